//! The checks: acknowledged and consumed records survive, replicas agree below the high
//! watermark, high watermarks never go back.

use super::world::{Role, World};

impl World {
    pub(super) fn check_leader_holds_history(&self, i: usize) -> Result<(), String> {
        let log = &self.nodes[i].disk.log;
        for (&o, rec) in &self.acked {
            if log.get(o as usize) != Some(rec) {
                fail!(
                    "node {} leads but lacks acked record {rec:?} at offset {o} (has {:?})",
                    self.nodes[i].id,
                    log.get(o as usize)
                );
            }
        }
        if log.len() < self.observed.len() || log[..self.observed.len()] != self.observed[..] {
            fail!(
                "node {} leads but lacks records consumers saw (log {} records, seen {})",
                self.nodes[i].id,
                log.len(),
                self.observed.len()
            );
        }
        Ok(())
    }

    pub(super) fn settle_acks(&mut self) -> Result<(), String> {
        let mut newly = Vec::new();
        let nodes = &self.nodes;
        let verbose = self.verbose;
        self.pending_acks.retain(|&(id, epoch, offset, rec)| {
            match &nodes[Self::idx(id)].role {
                Role::Leader(l) if l.leader_epoch() == epoch => {
                    if l.acks_all_satisfied(offset) {
                        if verbose {
                            eprintln!(
                                "        ack {offset} at {id}: hw {} isr {:?} v{} pending {:?} followers {:?}",
                                l.high_watermark(),
                                l.in_sync(),
                                l.isr_version(),
                                l.pending_isr_change(),
                                [1, 2, 3].iter().filter_map(|n| l.follower(*n)).collect::<Vec<_>>()
                            );
                        }
                        newly.push((id, offset, rec));
                        false
                    } else {
                        true
                    }
                }
                // Deposed or crashed: the producer sees an error or a timeout.
                _ => false,
            }
        });
        for (id, offset, rec) in newly {
            if self.nodes[Self::idx(id)].disk.log.get(offset as usize) != Some(&rec) {
                fail!("node {id} acknowledged {rec:?} at {offset} but does not hold it");
            }
            if let Some(prev) = self.acked.insert(offset, rec) {
                if prev != rec {
                    fail!("offset {offset} acknowledged as {prev:?} and later as {rec:?}");
                }
            }
            self.stats.acked += 1;
            self.event(format_args!("ack {offset} {rec:?} by {id}"));
            self.mix(offset);
        }
        Ok(())
    }

    pub(super) fn consume(&mut self) -> Result<(), String> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].role, Role::Leader(_)))
            .collect();
        if leaders.is_empty() {
            return Ok(());
        }
        let i = leaders[self.rng.below(leaders.len() as u64) as usize];
        let Role::Leader(l) = &self.nodes[i].role else {
            return Ok(());
        };
        let hw = l.high_watermark() as usize;
        let log = &self.nodes[i].disk.log;
        let common = hw.min(self.observed.len());
        if log[..common] != self.observed[..common] {
            fail!(
                "consumer reading from node {} below its high watermark {hw} sees records that differ from earlier reads",
                self.nodes[i].id
            );
        }
        if hw > self.observed.len() {
            self.stats.observed += (hw - self.observed.len()) as u64;
            self.observed
                .extend_from_slice(&log[self.observed.len()..hw]);
        }
        Ok(())
    }

    pub(super) fn check_watermarks(&mut self) -> Result<(), String> {
        for n in &self.nodes {
            if let Role::Leader(l) = &n.role {
                let key = (n.id, l.leader_epoch());
                let hw = l.high_watermark();
                let prev = self.hw_seen.insert(key, hw).unwrap_or(0);
                if hw < prev {
                    fail!(
                        "node {} at epoch {} moved its high watermark back from {prev} to {hw}",
                        n.id,
                        key.1
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_replicas(&self) -> Result<(), String> {
        for n in &self.nodes {
            let Some(local) = n.local() else { continue };
            if local.log_end_offset != n.disk.log.len() as u64
                || local.durable_offset > n.disk.durable as u64
            {
                fail!(
                    "node {}: state says end {} durable {}, the disk holds {} durable {}",
                    n.id,
                    local.log_end_offset,
                    local.durable_offset,
                    n.disk.log.len(),
                    n.disk.durable
                );
            }
            for (o, rec) in n.disk.log.iter().enumerate() {
                if local.epochs.epoch_of(o as u64) != Some(rec.epoch) {
                    fail!(
                        "node {}: epoch history disagrees with the log at offset {o}",
                        n.id
                    );
                }
            }
        }
        // Every replica agrees with the current leader below its own high watermark.
        let Some(leader) = self.meta.leader else {
            return Ok(());
        };
        let ln = &self.nodes[Self::idx(leader)];
        if !matches!(&ln.role, Role::Leader(l) if l.leader_epoch() == self.meta.epoch) {
            return Ok(());
        }
        for n in &self.nodes {
            let Some(local) = n.local() else { continue };
            let hw = local.high_watermark as usize;
            if ln.disk.log.len() < hw || ln.disk.log[..hw] != n.disk.log[..hw] {
                fail!(
                    "node {} disagrees with leader {leader} below its high watermark {hw}",
                    n.id
                );
            }
        }
        Ok(())
    }
}
