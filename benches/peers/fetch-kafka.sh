#!/usr/bin/env bash
# Install Apache Kafka for the side-by-side harness (benches/peers/run.sh) from Maven Central:
# org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION and its runtime dependencies, plus a Log4j 2
# binding (the Kafka pom names none, so the broker would otherwise stay silent) and a small
# sprawl-kafka-log4j2-config.jar holding log4j2.properties (INFO to stdout, request log at WARN;
# found on the classpath, so no -Dlog4j2.configurationFile is needed; one given still wins). The
# result runs the KRaft single node of run.sh with the machine's JDK (17 or newer for Kafka 4):
#
#   KAFKA_HOME=$(benches/peers/fetch-kafka.sh) benches/peers/run.sh
#   benches/peers/fetch-kafka.sh [DIR]        # prints DIR (only that) on stdout
#   java -cp 'DIR/lib/*' kafka.tools.StorageTool format -t CLUSTER_ID -c server.properties
#   java -Xmx512m -cp 'DIR/lib/*' kafka.Kafka server.properties
#
# DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/sprawl-peers/kafka-$KAFKA_VERSION) gets lib/ (the
# jars), pom.xml (the one-dependency pom resolved with `mvn dependency:copy-dependencies`) and
# .complete (the marker of a finished fetch). When DIR/.complete and the Kafka jar are there, the
# script prints DIR and exits without touching the network. Otherwise it fills a temporary
# directory next to DIR and renames it into place at the end, so an interrupted fetch never
# leaves a DIR that looks complete. It refuses a DIR that exists, is not empty and is not a
# finished fetch. Progress and errors go to stderr; any failure exits non-zero.
#
# Variables: KAFKA_VERSION (4.1.1), SCALA_VERSION (2.13), LOG4J_VERSION (2.24.3, the binding),
# DEPENDENCY_PLUGIN_VERSION (3.8.1, maven-dependency-plugin), MAVEN_REPO_LOCAL (Maven's local
# repository, default Maven's own ~/.m2/repository), MVN (mvn). Needs Maven (installed with
# `apt-get install -y maven` when missing and running as root) and network access to Maven
# Central (or the mirror in ~/.m2/settings.xml).

set -uo pipefail

: "${KAFKA_VERSION:=4.1.1}"
: "${SCALA_VERSION:=2.13}"
: "${LOG4J_VERSION:=2.24.3}"
: "${DEPENDENCY_PLUGIN_VERSION:=3.8.1}"
: "${MAVEN_REPO_LOCAL:=}"
: "${MVN:=mvn}"

log() { echo "fetch-kafka: $*" >&2; }
die() { echo "fetch-kafka: error: $*" >&2; exit 1; }

if (($# > 1)) || [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    (($# > 1)) && exit 2
    exit 0
fi

# The versions go into a pom and into file names: accept plain version strings only.
for v in KAFKA_VERSION SCALA_VERSION LOG4J_VERSION DEPENDENCY_PLUGIN_VERSION; do
    [[ ${!v} =~ ^[0-9A-Za-z][0-9A-Za-z._+-]*$ ]] || die "$v='${!v}' is not a version string"
done

DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/sprawl-peers/kafka-$KAFKA_VERSION}
DIR=${DIR%/}
[[ -n $DIR ]] || die "DIR is empty"
[[ $DIR == /* ]] || DIR=$PWD/$DIR   # printed for KAFKA_HOME: absolute, valid from any directory
KAFKA_JAR=kafka_$SCALA_VERSION-$KAFKA_VERSION.jar

# complete D: true when D holds a finished fetch of this version.
complete() { [[ -f $1/.complete && -f $1/lib/$KAFKA_JAR ]]; }

# The fast path: already fetched, no network.
if complete "$DIR"; then
    log "already fetched: $DIR"
    printf '%s\n' "$DIR"
    exit 0
fi
if [[ -e $DIR ]]; then
    if [[ -d $DIR ]] && [[ -z $(ls -A "$DIR") ]]; then
        rmdir "$DIR" || die "cannot remove the empty directory $DIR"
    else
        die "$DIR exists but is not a finished fetch of Kafka $KAFKA_VERSION (no .complete or" \
            "no lib/$KAFKA_JAR); remove it or pass another DIR"
    fi
fi

# Maven: install it from Debian when missing and allowed to.
if ! command -v "$MVN" >/dev/null; then
    if [[ $MVN == mvn ]] && (($(id -u) == 0)) && command -v apt-get >/dev/null; then
        log "mvn not found; installing Maven with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y maven >&2; then
            # The package lists may be stale or absent: update once, then try again.
            if ! { apt-get update >&2 && apt-get install -y maven >&2; }; then
                die "apt-get install maven failed; install Maven 3 yourself and rerun"
            fi
        fi
        command -v mvn >/dev/null || die "Maven is installed but mvn is not on PATH; fix PATH"
    else
        die "'$MVN' not found; install Maven 3 (e.g. apt-get install maven) or set MVN"
    fi
fi
command -v java >/dev/null || die "no java on PATH; Maven and Kafka need a JDK (17+)"

PARENT=$(dirname "$DIR")
mkdir -p "$PARENT" || die "cannot create $PARENT"
TMP=$(mktemp -d "$PARENT/.kafka-$KAFKA_VERSION.tmp.XXXXXX") ||
    die "cannot create a temporary directory in $PARENT"
MVN_PID=""
# cleanup: stop a Maven still running (an interrupted fetch), then drop the temporary directory.
cleanup() {
    if [[ -n $MVN_PID ]]; then
        kill "$MVN_PID" 2>/dev/null
        wait "$MVN_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# mktemp makes it 0700; DIR gets the usual mode of a new directory.
{ chmod "$(umask -S)" "$TMP" && mkdir -p "$TMP/lib" "$TMP/work"; } || die "cannot write into $TMP"
cat >"$TMP/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by benches/peers/fetch-kafka.sh: Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) and a
     Log4j 2 binding, resolved with mvn dependency:copy-dependencies -DincludeScope=runtime. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sprawl.peers</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <!-- SLF4J 1.7 (what Kafka logs through) to Log4j 2; pulls log4j-api and log4j-core. -->
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
</project>
EOF

mvn_args=(-B -ntp -C -U -Dstyle.color=never -f "$TMP/pom.xml"
    "org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN_VERSION:copy-dependencies"
    -DincludeScope=runtime "-DoutputDirectory=$TMP/lib")
[[ -n $MAVEN_REPO_LOCAL ]] && mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")

log "fetching Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) and its runtime dependencies" \
    "with Maven into $DIR"
start=$SECONDS
# In the background, so that a signal to this script acts at once (the trap stops Maven).
(cd "$TMP/work" && exec "$MVN" "${mvn_args[@]}") >"$TMP/mvn.log" 2>&1 &
MVN_PID=$!
wait "$MVN_PID"
mvn_status=$?
MVN_PID=""
if ((mvn_status != 0)); then
    # Maven's own diagnosis, without its generic advice lines.
    grep -E '^\[(ERROR|WARNING)\] .*[^ ]' "$TMP/mvn.log" |
        grep -vE 'full stack trace|Re-run Maven|For more information|\[Help 1\] http' |
        head -n 20 >&2 || tail -n 20 "$TMP/mvn.log" >&2
    die "Maven could not resolve org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION" \
        "(see above):" \
        "check that the version exists on Maven Central and that Maven Central is reachable" \
        "(proxy/mirror settings in ~/.m2/settings.xml)"
fi
[[ -f $TMP/lib/$KAFKA_JAR ]] || die "Maven finished but $KAFKA_JAR is not among the copied jars"

# The logging configuration, as a classpath resource (log4j 2 looks for log4j2.properties).
mkdir -p "$TMP/work/conf"
cat >"$TMP/work/conf/log4j2.properties" <<'EOF'
# Written by benches/peers/fetch-kafka.sh: Kafka's broker log to stdout, as its distribution's
# config/log4j2.yaml does for the console (without the extra log files).
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.target = SYSTEM_OUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
EOF
config_jar=$TMP/lib/sprawl-kafka-log4j2-config.jar
if command -v jar >/dev/null; then
    jar --create --no-manifest --file "$config_jar" -C "$TMP/work/conf" log4j2.properties >&2
elif command -v zip >/dev/null; then
    (cd "$TMP/work/conf" && zip -q "$config_jar" log4j2.properties) >&2
elif command -v python3 >/dev/null; then
    (cd "$TMP/work/conf" && python3 -m zipfile -c "$config_jar" log4j2.properties) >&2
else
    false
fi || die "cannot build $config_jar (needs jar, zip or python3)"

# A cheap check that the classpath loads (no network, no files): StorageTool random-uuid.
if ! java -cp "$TMP/lib/*" kafka.tools.StorageTool random-uuid >"$TMP/work/check.log" 2>&1; then
    tail -n 15 "$TMP/work/check.log" >&2
    die "the fetched jars do not run 'kafka.tools.StorageTool random-uuid' with" \
        "$(command -v java)" \
        "(Kafka $KAFKA_VERSION needs Java 17 or newer for the broker); see above"
fi

jars=$(find "$TMP/lib" -maxdepth 1 -name '*.jar' | wc -l)
rm -rf "$TMP/work" "$TMP/mvn.log"
{
    echo "kafka_version=$KAFKA_VERSION"
    echo "scala_version=$SCALA_VERSION"
    echo "log4j_version=$LOG4J_VERSION"
    echo "jars=$jars"
    echo "fetched_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$TMP/.complete"

# Into place. A concurrent fetch may have won the race: then its DIR is as good as ours.
if ! mv -T "$TMP" "$DIR" 2>/dev/null; then
    complete "$DIR" || die "cannot rename $TMP to $DIR"
    log "another fetch finished $DIR first; using it"
else
    trap - EXIT
fi
log "done in $((SECONDS - start))s: $jars jars, $(du -sh "$DIR/lib" | cut -f1) in $DIR/lib"
printf '%s\n' "$DIR"
