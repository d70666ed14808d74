//! docs/protocol.md and the code must agree: the error-code and api-key tables (with each api's
//! versions) and the list of retriable codes are parsed from the document and compared with the
//! enums, so neither can drift alone.

use net::codec::{ApiKey, ErrorCode, Limits};

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md exists")
}

/// Rows `| <number> | <name> | ...` of the table that follows `heading`.
fn table_rows(doc: &str, heading: &str) -> Vec<(u16, String)> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("heading {heading:?} in protocol.md"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.parse().ok()?, cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn error_code_table_matches_the_enum() {
    let rows = table_rows(&protocol_md(), "## Error codes");
    let code: Vec<(u16, String)> = ErrorCode::ALL
        .iter()
        .map(|c| (*c as u16, c.name().to_owned()))
        .collect();
    assert_eq!(rows, code);
}

#[test]
fn api_key_table_matches_the_enum() {
    let rows = table_rows(&protocol_md(), "| api_key | name");
    let code: Vec<(u16, String)> = ApiKey::ALL
        .iter()
        .map(|a| (*a as u16, a.name().to_owned()))
        .collect();
    assert_eq!(rows, code);
}

/// The `versions` column of the api table: `0` or `MIN-MAX`, one row per api key.
#[test]
fn api_versions_column_matches_supported_versions() {
    let doc = protocol_md();
    let start = doc.find("| api_key | name").expect("api table");
    let header: Vec<&str> = doc[start..]
        .lines()
        .next()
        .expect("header row")
        .split('|')
        .map(str::trim)
        .collect();
    let column = header
        .iter()
        .position(|c| *c == "versions")
        .expect("a `versions` column in the api table");
    let documented: Vec<(u16, (u16, u16))> = doc[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let key = cells.get(1)?.parse().ok()?;
            let versions = cells.get(column)?;
            let (min, max) = versions.split_once('-').unwrap_or((versions, versions));
            Some((key, (min.parse().ok()?, max.parse().ok()?)))
        })
        .collect();
    let code: Vec<(u16, (u16, u16))> = ApiKey::ALL
        .iter()
        .map(|a| (*a as u16, a.supported_versions()))
        .collect();
    assert_eq!(documented, code);
}

#[test]
fn documented_limits_match_the_code() {
    let doc = protocol_md();
    assert_eq!(Limits::FRAME_BYTES_MAX_DEFAULT, 8_388_608);
    assert!(doc.contains("8 MiB (8,388,608)"));
    assert_eq!(Limits::FRAME_BYTES_MAX_PRE_HANDSHAKE, 524_288);
    assert!(doc.contains("512 KiB (524,288)"));
    assert!(doc.contains(&format!("Minimum {}.", net::codec::LENGTH_MIN)));
}

/// The "Retriable" line under the error-code table lists exactly the codes
/// `ErrorCode::is_retriable` accepts.
#[test]
fn retriable_codes_match_is_retriable() {
    let doc = protocol_md();
    let heading = "Retriable (`ErrorCode::is_retriable`):";
    let start = doc
        .find(heading)
        .expect("the retriable list in protocol.md")
        + heading.len();
    let list = &doc[start..];
    let list = &list[..list.find('.').expect("a full stop")];
    let documented: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
    let code: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|c| c.is_retriable())
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(documented, code);
}
