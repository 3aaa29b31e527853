//! The corpus: the inputs whose runs reached behaviour no earlier run had,
//! one file each in the corpus directory, so that a campaign resumes where
//! the last one stopped and other tools can read them.
//!
//! An input's file is its bytes: the schedule seed (8 bytes, little
//! endian), then the guest's input bytes; its name is the content hash, so
//! the same input is one file however often it is found.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::trace::content_hash;

/// The smallest corpus file: the seed.
const SEED_BYTES: usize = 8;

/// One input of a run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Input {
    /// The seed of the schedule and of DMA completion times (`--seed`).
    pub seed: u64,
    /// The guest's input bytes.
    pub bytes: Vec<u8>,
}

impl Input {
    /// The input's file contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.seed.to_le_bytes().to_vec();
        out.extend(&self.bytes);
        out
    }

    /// The input a corpus file holds, if it is one.
    pub fn decode(file: &[u8]) -> Option<Input> {
        let (seed, bytes) = file.split_first_chunk::<SEED_BYTES>()?;
        Some(Input { seed: u64::from_le_bytes(*seed), bytes: bytes.to_vec() })
    }
}

/// Why the corpus cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The directory or a file cannot be read or written.
    #[error("corpus {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not an input.
    #[error(
        "corpus file {path} has {length} byte(s): an input is an 8-byte little-endian seed followed by the guest's input bytes; remove the file or fix it"
    )]
    NotAnInput {
        /// The file.
        path: PathBuf,
        /// Its length.
        length: usize,
    },
}

/// The corpus directory.
#[derive(Debug)]
pub struct Corpus {
    dir: PathBuf,
}

impl Corpus {
    /// The corpus in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Corpus, CorpusError> {
        std::fs::create_dir_all(dir).map_err(|source| CorpusError::Io { path: dir.to_owned(), source })?;
        Ok(Corpus { dir: dir.to_owned() })
    }

    /// Every input in the directory, in file-name order (hidden files and
    /// directories are not inputs).
    pub fn load(&self) -> Result<Vec<Input>, CorpusError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CorpusError::Io { path, source }
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map_err(io(&entry.path()))?.is_file() {
                paths.push(entry.path());
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let file = std::fs::read(&path).map_err(io(&path))?;
                Input::decode(&file).ok_or(CorpusError::NotAnInput { length: file.len(), path })
            })
            .collect()
    }

    /// Writes `input` (once: the file name is its content hash).
    pub fn add(&self, input: &Input) -> Result<PathBuf, CorpusError> {
        let bytes = input.encode();
        let path = self.dir.join(content_hash(&bytes).trim_start_matches("0x"));
        if !path.exists() {
            // Written aside and renamed, so that a stop mid-write leaves no
            // torn input; aside under a name of its own, as the workers of
            // one campaign (`-j N`) may add the same input at the same time.
            static WRITES: AtomicU64 = AtomicU64::new(0);
            let n = WRITES.fetch_add(1, Ordering::Relaxed);
            let partial = self.dir.join(format!(".{}.{n}.partial", std::process::id()));
            std::fs::write(&partial, &bytes).map_err(|source| CorpusError::Io { path: partial.clone(), source })?;
            std::fs::rename(&partial, &path).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip_through_their_files() {
        let input = Input { seed: 0x0102_0304_0506_0708, bytes: vec![9, 10] };
        assert_eq!(input.encode(), [8, 7, 6, 5, 4, 3, 2, 1, 9, 10]);
        assert_eq!(Input::decode(&input.encode()), Some(input));
        assert_eq!(Input::decode(&[1; 8]), Some(Input { seed: 0x0101_0101_0101_0101, bytes: Vec::new() }));
        assert_eq!(Input::decode(&[1; 7]), None);
    }

    #[test]
    fn a_corpus_keeps_each_input_once_and_refuses_a_file_that_is_not_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus = Corpus::open(&dir.path().join("corpus")).expect("open");
        let (a, b) = (Input { seed: 1, bytes: Vec::new() }, Input { seed: 2, bytes: vec![3] });
        let path = corpus.add(&a).expect("add");
        assert_eq!(corpus.add(&a).expect("again"), path);
        corpus.add(&b).expect("add");
        let mut loaded = corpus.load().expect("load");
        loaded.sort_by_key(|i| i.seed);
        assert_eq!(loaded, [a, b]);
        // Workers adding the same input at once each write it aside under their own name.
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..50).for_each(|seed| drop(corpus.add(&Input { seed, bytes: vec![4] }).expect("add at once"))));
            }
        });
        assert_eq!(corpus.load().expect("load").len(), 52);
        std::fs::write(dir.path().join("corpus/short"), [1, 2, 3]).expect("write");
        let error = corpus.load().expect_err("a 3-byte file");
        assert!(matches!(error, CorpusError::NotAnInput { length: 3, .. }), "{error}");
        assert!(error.to_string().contains("corpus/short has 3 byte(s)"), "{error}");
    }
}
