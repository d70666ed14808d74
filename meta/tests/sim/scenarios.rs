//! What a seed runs: chaos then heal (safety, liveness, durability), or a
//! partitioned minority (PreVote + CheckQuorum).

use meta::{Command, MemBackend, MetaNode, Role};

use super::{Faults, Sim, STEPS_PER_TICK};

impl Sim {
    pub fn run(&mut self, chaos_steps: u64) -> Result<(), String> {
        for _ in 0..chaos_steps {
            if self.rng.chance(6) {
                self.inject_fault();
            }
            if self.campaigning() && self.rng.chance(100) {
                // Kill -9 a voter mid-election and restart it at once: its vote
                // must survive, or duplicated vote requests could win twice.
                let i = self.rng.below(self.n as u64) as usize;
                if self.nodes[i].is_some() {
                    self.nodes[i] = None;
                    self.stats.crashes += 1;
                    self.disks[i].crash(self.rng.below(100));
                    self.down_until[i] = self.now + 1 + self.rng.below(4);
                }
            }
            if self.rng.chance(150) {
                self.propose();
            }
            self.step()?;
        }
        // Heal everything and stop injecting faults.
        self.heal();
        self.faults = Faults {
            drop_per_mille: 0,
            dup_per_mille: 0,
            ..self.faults
        };
        for i in 0..self.n {
            self.paused_until[i] = 0;
            self.down_until[i] = 0;
        }
        self.liveness()?;
        self.check_final()
    }

    /// After healing, a leader must commit a fresh proposal on every node. A
    /// probe sent to a leader that was already deposed is lost, so an
    /// unanswered probe is retried under a new name.
    fn liveness(&mut self) -> Result<(), String> {
        let deadline = self.now + 80 * STEPS_PER_TICK;
        let mut retry_at = self.now;
        let mut attempt = 0;
        while self.now < deadline {
            self.step()?;
            let acked = (0..attempt).find_map(|a| self.acked.get(&format!("probe{a}")).copied());
            if let Some(index) = acked {
                let all = self
                    .nodes
                    .iter()
                    .flatten()
                    .all(|n| n.status().applied_index >= index);
                if all && self.net.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if self.now < retry_at {
                continue;
            }
            if let Some(l) = self.leader() {
                let name = format!("probe{attempt}");
                let cmd = Command::CreateTopic {
                    name: name.clone(),
                    partitions: 1,
                    replication_factor: 1,
                    min_insync: 1,
                    config: vec![],
                };
                if let Some(Ok(id)) = self.nodes[l].as_mut().map(|n| n.propose(&cmd)) {
                    self.pending.insert(id, (l, name));
                    attempt += 1;
                    retry_at = self.now + 20 * STEPS_PER_TICK;
                }
            }
        }
        let statuses: Vec<_> = self.nodes.iter().flatten().map(|n| n.status()).collect();
        Err(format!("no progress 80 ticks after healing: {statuses:?}"))
    }

    fn check_final(&self) -> Result<(), String> {
        let nodes: Vec<&MetaNode<MemBackend>> = self.nodes.iter().flatten().collect();
        let first = nodes[0];
        for (name, &index) in &self.acked {
            match self.applied_log.get(&index) {
                Some((_, Some(Command::CreateTopic { name: n, .. }))) if n == name => {}
                other => {
                    return Err(format!("acked {name} at {index}, log holds {other:?}"));
                }
            }
            for n in &nodes {
                if !n.state().topics.contains_key(name) {
                    return Err(format!("acked topic {name} missing on {:?}", n.status()));
                }
            }
        }
        for n in &nodes[1..] {
            if n.status().applied_index == first.status().applied_index
                && n.state() != first.state()
            {
                return Err(format!(
                    "states differ: {:?} vs {:?}",
                    n.status(),
                    first.status()
                ));
            }
        }
        Ok(())
    }

    /// PreVote + CheckQuorum: a minority (1 of 3, 2 of 5) cut off for 20
    /// election timeouts must not raise anyone's term, and must not depose the
    /// majority's leader when it comes back.
    pub fn run_minority(&mut self) -> Result<(), String> {
        self.faults.drop_per_mille = 0;
        let mut leader = None;
        for _ in 0..100 * STEPS_PER_TICK {
            self.step()?;
            if let Some(l) = self.leader() {
                let id = l as u64 + 1;
                if self
                    .nodes
                    .iter()
                    .flatten()
                    .all(|n| n.status().leader_id == id)
                {
                    leader = Some(l);
                    break;
                }
            }
        }
        let leader = leader.ok_or("no stable leader before the partition")?;
        let term = self.nodes[leader].as_ref().map_or(0, |n| n.status().term);
        let mut others: Vec<usize> = (0..self.n).filter(|&i| i != leader).collect();
        let mut minority = Vec::new();
        for _ in 0..(self.n - 1) / 2 {
            let k = self.rng.below(others.len() as u64) as usize;
            minority.push(others.remove(k));
        }
        for &m in &minority {
            for j in (0..self.n).filter(|j| !minority.contains(j)) {
                self.blocked[m][j] = true;
                self.blocked[j][m] = true;
            }
        }
        let check = |sim: &Sim, phase: &str| -> Result<(), String> {
            for (i, n) in sim.nodes.iter().enumerate() {
                let st = n.as_ref().map(|n| n.status()).ok_or("node down")?;
                if st.term != term {
                    return Err(format!(
                        "{phase}: node {} moved term {term} -> {}",
                        i + 1,
                        st.term
                    ));
                }
                if i == leader && st.role != Role::Leader {
                    return Err(format!("{phase}: leader {} deposed: {st:?}", i + 1));
                }
            }
            Ok(())
        };
        for step in 0..200 * STEPS_PER_TICK {
            if step % 50 == 0 {
                self.propose();
            }
            self.step()?;
            check(self, "partitioned")?;
        }
        self.heal();
        for _ in 0..100 * STEPS_PER_TICK {
            self.step()?;
            check(self, "healed")?;
        }
        let target = self.nodes[leader]
            .as_ref()
            .map_or(0, |n| n.status().applied_index);
        for &m in &minority {
            let st = self.nodes[m]
                .as_ref()
                .map(|n| n.status())
                .ok_or("node down")?;
            if st.leader_id != leader as u64 + 1 || st.applied_index != target {
                return Err(format!(
                    "node {} did not rejoin: {st:?}, leader at {target}",
                    m + 1
                ));
            }
        }
        Ok(())
    }
}
