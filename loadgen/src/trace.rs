//! Editing traces for the cold-load scenario.
//!
//! File format (`len-prefixed`): a sequence of records, each a lib0 varuint
//! byte length followed by one Yjs v1 update, in the order they were made.
//! `raw`: the whole file is one Yjs v1 update (like the yrs repository's
//! `yrs/benches/input/b4-update.bin`, the B4 trace's final state).

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use yrs::{
    Doc, GetString, Text, Transact, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    updates::decoder::Decode,
};

use crate::wire::{Reader, write_var};

/// The section the generated trace edits by default (root `section:trace`);
/// `cold --as-agencies` gives it to one agency.
pub const SECTION: &str = "trace";

#[derive(Args, Debug)]
pub struct GenTraceArgs {
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Single-character operations (the B4 trace has 259,778: 182,315
    /// insertions and 77,463 deletions).
    #[arg(long, default_value_t = 260_000)]
    pub ops: u64,
    /// Share of operations that delete the character before the cursor.
    #[arg(long, default_value_t = 0.298)]
    pub delete_ratio: f64,
    /// Share of operations that first move the cursor to a random position.
    #[arg(long, default_value_t = 0.02)]
    pub jump_ratio: f64,
    /// Root the trace edits: a Y.XmlFragment holding one paragraph.
    #[arg(long, default_value = "section:trace")]
    pub root: String,
    /// Yjs client id of the (single) author.
    #[arg(long, default_value_t = 1)]
    pub client_id: u64,
    #[arg(long, default_value_t = 4)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// varuint length + Yjs v1 update, repeated (what gen-trace writes).
    LenPrefixed,
    /// One Yjs v1 update (e.g. yrs' b4-update.bin).
    Raw,
}

pub struct Stats {
    pub updates: u64,
    pub inserts: u64,
    pub deletes: u64,
    pub final_len: u32,
    pub bytes: u64,
}

/// Makes the trace and hands each update to `sink`. The first update
/// creates the paragraph; then one update per operation.
pub fn build(
    a: &GenTraceArgs,
    mut sink: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Stats> {
    let doc = Doc::with_client_id(a.client_id);
    let frag = doc.get_or_insert_xml_fragment(a.root.as_str());
    let text = {
        let mut txn = doc.transact_mut();
        let p = frag.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        let t = p.push_back(&mut txn, XmlTextPrelim::new(""));
        sink(&txn.encode_update_v1())?;
        t
    };
    let mut rng = StdRng::seed_from_u64(a.seed);
    let mut s = Stats {
        updates: 1,
        inserts: 0,
        deletes: 0,
        final_len: 0,
        bytes: 0,
    };
    let mut len: u32 = 0;
    let mut cursor: u32 = 0;
    const LETTERS: &[u8] = b"etaoinshrdlucmfwypvbgkqjxz      ,.\n";
    for _ in 0..a.ops {
        if len > 0 && rng.random::<f64>() < a.jump_ratio {
            cursor = rng.random_range(0..=len);
        }
        let mut txn = doc.transact_mut();
        if cursor > 0 && rng.random::<f64>() < a.delete_ratio {
            text.remove_range(&mut txn, cursor - 1, 1);
            cursor -= 1;
            len -= 1;
            s.deletes += 1;
        } else {
            let ch = LETTERS[rng.random_range(0..LETTERS.len())] as char;
            text.insert(&mut txn, cursor, ch.encode_utf8(&mut [0; 4]));
            cursor += 1;
            len += 1;
            s.inserts += 1;
        }
        let update = txn.encode_update_v1();
        s.bytes += update.len() as u64;
        sink(&update)?;
        s.updates += 1;
    }
    s.final_len = len;
    debug_assert_eq!(text.get_string(&doc.transact()).len() as u32, len);
    Ok(s)
}

pub fn generate(a: GenTraceArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.delete_ratio) || !(0.0..=1.0).contains(&a.jump_ratio) {
        bail!("--delete-ratio must be in [0, 1) and --jump-ratio in [0, 1]");
    }
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = BufWriter::new(file);
    let started = std::time::Instant::now();
    let mut len_buf = Vec::with_capacity(8);
    let s = build(&a, |u| {
        len_buf.clear();
        write_var(&mut len_buf, u.len() as u64);
        w.write_all(&len_buf)?;
        w.write_all(u)?;
        Ok(())
    })?;
    w.flush()?;
    let size = std::fs::metadata(&a.out)?.len();
    println!(
        "wrote {}: {} updates ({} inserts, {} deletes), final text {} characters, {} bytes, {:.1} s",
        a.out.display(),
        s.updates,
        s.inserts,
        s.deletes,
        s.final_len,
        size,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads a trace file into its updates.
pub fn read(path: &Path, format: TraceFormat) -> anyhow::Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let updates = match format {
        TraceFormat::Raw => vec![data],
        TraceFormat::LenPrefixed => split(&data)?,
    };
    // Fail early on a file that is not what the format says.
    for (i, u) in updates.iter().enumerate().take(3) {
        yrs::Update::decode_v1(u)
            .with_context(|| format!("update {i} of {} is not a Yjs v1 update", path.display()))?;
    }
    Ok(updates)
}

fn split(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while r.has_content() {
        let at = r.position();
        let u = r
            .read_buf()
            .map_err(|e| anyhow::anyhow!("trace record at byte {at}: {e}"))?;
        out.push(u.to_vec());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{ReadTxn, Update, XmlFragmentRef};

    fn args(ops: u64) -> GenTraceArgs {
        GenTraceArgs {
            out: PathBuf::new(),
            ops,
            delete_ratio: 0.3,
            jump_ratio: 0.05,
            root: "section:trace".into(),
            client_id: 1,
            seed: 9,
        }
    }

    #[test]
    fn trace_round_trips_and_replays_to_the_same_text() {
        let mut file = Vec::new();
        let mut updates = Vec::new();
        let s = build(&args(2000), |u| {
            write_var(&mut file, u.len() as u64);
            file.extend_from_slice(u);
            updates.push(u.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(s.updates, 2001);
        assert_eq!(s.inserts + s.deletes, 2000);
        assert!(s.deletes > 400 && s.deletes < 800, "{}", s.deletes);
        assert_eq!(split(&file).unwrap(), updates);

        let doc = Doc::new();
        for u in &updates {
            doc.transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
        }
        let frag: XmlFragmentRef = doc.get_or_insert_xml_fragment("section:trace");
        let text = frag.get_string(&doc.transact());
        assert_eq!(
            text.len() as u32,
            "<paragraph></paragraph>".len() as u32 + s.final_len
        );
        assert!(doc.transact().state_vector().len() == 1);
    }

    #[test]
    fn truncated_trace_is_an_error() {
        assert!(split(&[5, 1, 2]).is_err());
        assert!(split(&[]).unwrap().is_empty());
    }
}
