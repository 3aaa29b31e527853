//! Shrinking a fuzz finding (`kmemvisor fuzz --minimize`): the edits of a
//! `run` command line that make a run simpler — a shorter guest input, fewer
//! guest arguments, no DMA jitter, fewer PCT change points and steps, fewer
//! vCPUs — tried one at a time and kept when the run still fails the same
//! way.
//!
//! This module only edits command lines; the caller runs them.

/// An option the minimizer lowers, with its long name and the argument id
/// the parsed options are keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knob {
    /// `--NAME` on the command line.
    pub long: &'static str,
    /// The parsed option's id.
    pub id: &'static str,
    /// The simplest value.
    pub floor: u64,
}

/// The options that make a schedule simpler when lower, simplest first.
pub const KNOBS: [Knob; 4] = [
    Knob { long: "dma-jitter", id: "dma_jitter", floor: 0 },
    Knob { long: "pct-depth", id: "pct_depth", floor: 1 },
    Knob { long: "pct-steps", id: "pct_steps", floor: 1 },
    Knob { long: "vcpus", id: "vcpus", floor: 1 },
];

/// The values to try for an option now at `current`, simplest first: the
/// floor, then halfway, then one less.
pub fn lower_values(current: u64, floor: u64) -> Vec<u64> {
    let mut values = Vec::new();
    for v in [floor, floor + (current.saturating_sub(floor)) / 2, current.saturating_sub(1)] {
        if v >= floor && v < current && !values.contains(&v) {
            values.push(v);
        }
    }
    values
}

/// Where the guest's arguments start: after `--`, if any.
fn separator(line: &[String]) -> Option<usize> {
    line.iter().position(|a| a == "--")
}

/// Where the value of `--long` is in `line`, before the guest's arguments.
enum ValueAt {
    /// The word at this index (`--long V`).
    Word(usize),
    /// After the `=` of the word at this index (`--long=V`).
    Joined(usize),
}

/// The first `--long V` or `--long=V` before the guest's arguments: what
/// [`option_value`] reads and [`with_option`] replaces.
fn value_at(line: &[String], long: &str) -> Option<ValueAt> {
    let flag = format!("--{long}");
    let joined = format!("--{long}=");
    let end = separator(line).unwrap_or(line.len());
    line[..end].iter().enumerate().find_map(|(i, a)| {
        if *a == flag {
            (i + 1 < end).then_some(ValueAt::Word(i + 1))
        } else {
            a.starts_with(&joined).then_some(ValueAt::Joined(i))
        }
    })
}

/// `line` with `--long` set to `value`: the existing value replaced (as
/// `--long V` or `--long=V`), else the option added before the guest's
/// arguments.
pub fn with_option(line: &[String], long: &str, value: impl std::fmt::Display) -> Vec<String> {
    let mut out = line.to_vec();
    match value_at(line, long) {
        Some(ValueAt::Word(i)) => out[i] = value.to_string(),
        Some(ValueAt::Joined(i)) => out[i] = format!("--{long}={value}"),
        None => {
            let end = separator(line).unwrap_or(line.len());
            out.splice(end..end, [format!("--{long}"), value.to_string()]);
        }
    }
    out
}

/// The value of `--long` in `line` (before the guest's arguments), as
/// `--long V` or `--long=V`.
pub fn option_value<'a>(line: &'a [String], long: &str) -> Option<&'a str> {
    match value_at(line, long)? {
        ValueAt::Word(i) => Some(&line[i]),
        ValueAt::Joined(i) => line[i].split_once('=').map(|(_, value)| value),
    }
}

/// The sizes of the cuts to try on an input of `len` bytes, largest first:
/// half of it (rounded up), half of that, …, one byte.
pub fn cut_sizes(len: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut size = len;
    while size > 1 {
        size = size.div_ceil(2);
        sizes.push(size);
    }
    if len == 1 {
        sizes.push(1);
    }
    sizes
}

/// `input` without the `size` bytes from `start` on (fewer at its end).
pub fn without(input: &[u8], start: usize, size: usize) -> Vec<u8> {
    let start = start.min(input.len());
    let end = start.saturating_add(size).min(input.len());
    [&input[..start], &input[end..]].concat()
}

/// The guest's arguments of `line`.
pub fn guest_args(line: &[String]) -> &[String] {
    separator(line).map_or(&[][..], |i| &line[i + 1..])
}

/// `line` without its `n`th guest argument (and without the `--` when none
/// is left).
pub fn without_guest_arg(line: &[String], n: usize) -> Vec<String> {
    let Some(start) = separator(line) else { return line.to_vec() };
    let mut out = line.to_vec();
    if start + 1 + n < out.len() {
        out.remove(start + 1 + n);
    }
    if out.len() == start + 1 {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &str) -> Vec<String> {
        words.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn options_are_replaced_in_either_form_or_added_before_the_guest_args() {
        let l = line("run g --pct-depth 3 --dma-jitter=7 -- --pct-depth 9");
        assert_eq!(with_option(&l, "pct-depth", 1), line("run g --pct-depth 1 --dma-jitter=7 -- --pct-depth 9"));
        assert_eq!(with_option(&l, "dma-jitter", 0), line("run g --pct-depth 3 --dma-jitter=0 -- --pct-depth 9"));
        assert_eq!(with_option(&l, "vcpus", 2), line("run g --pct-depth 3 --dma-jitter=7 --vcpus 2 -- --pct-depth 9"));
        assert_eq!(with_option(&line("run g"), "vcpus", 1), line("run g --vcpus 1"));
    }

    #[test]
    fn option_values_are_found_in_either_form_before_the_guest_args() {
        assert_eq!(option_value(&line("run g --input a.bin -- --input b"), "input"), Some("a.bin"));
        assert_eq!(option_value(&line("run g --input=a.bin"), "input"), Some("a.bin"));
        assert_eq!(option_value(&line("run g -- --input b"), "input"), None);
        assert_eq!(option_value(&line("run g --input"), "input"), None);
        assert_eq!(with_option(&line("run g --input a"), "input", "b.min"), line("run g --input b.min"));
    }

    #[test]
    fn cuts_halve_down_to_one_byte_and_remove_what_they_cover() {
        assert_eq!(cut_sizes(0), Vec::<usize>::new());
        assert_eq!(cut_sizes(1), [1]);
        assert_eq!(cut_sizes(2), [1]);
        assert_eq!(cut_sizes(5), [3, 2, 1]);
        assert_eq!(cut_sizes(8), [4, 2, 1]);
        assert_eq!(without(b"KV!junk", 3, 4), b"KV!");
        assert_eq!(without(b"KV!junk", 0, 1), b"V!junk");
        assert_eq!(without(b"KV!junk", 5, 9), b"KV!ju");
        assert_eq!(without(b"KV!", 7, 1), b"KV!");
    }

    #[test]
    fn guest_args_are_removed_one_at_a_time() {
        let l = line("run g --seed 4 -- a b");
        assert_eq!(guest_args(&l), ["a", "b"]);
        assert_eq!(without_guest_arg(&l, 0), line("run g --seed 4 -- b"));
        assert_eq!(without_guest_arg(&without_guest_arg(&l, 1), 0), line("run g --seed 4"));
        assert_eq!(without_guest_arg(&line("run g"), 0), line("run g"));
    }

    #[test]
    fn lower_values_go_from_the_floor_up_and_stay_below() {
        assert_eq!(lower_values(3, 1), [1, 2]);
        assert_eq!(lower_values(1000, 1), [1, 500, 999]);
        assert_eq!(lower_values(1, 1), Vec::<u64>::new());
        assert_eq!(lower_values(5, 0), [0, 2, 4]);
    }
}
