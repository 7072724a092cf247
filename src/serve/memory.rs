//! psutil's detailed memory fields, read from smaps: `memory_full_info`
//! (from smaps_rollup, one summary the kernel adds up) and `memory_maps`
//! (from smaps, one entry per mapped path as psutil groups them).

use serde_json::{Value, json};

use crate::snapshot::usage::Statm;

/// The smaps counters psutil's `memory_maps()` reports, in its order.
const MAP_COUNTERS: [(&str, &str); 10] = [
    ("Rss", "rss"),
    ("Size", "size"),
    ("Pss", "pss"),
    ("Shared_Clean", "shared_clean"),
    ("Shared_Dirty", "shared_dirty"),
    ("Private_Clean", "private_clean"),
    ("Private_Dirty", "private_dirty"),
    ("Referenced", "referenced"),
    ("Anonymous", "anonymous"),
    ("Swap", "swap"),
];

/// A `Key:   12 kB` line of smaps as (key, bytes); `None` for the map
/// headers and for the lines that are no sizes (`VmFlags:`, `THPeligible:`).
fn counter(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    if key.contains(' ') {
        return None;
    }
    let mut words = rest.split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some((key, kb * 1024))
}

/// `memory_full_info`: statm's counters as `memory_info` gives them plus
/// uss (private pages: what quitting the process would free), pss and
/// swap from smaps_rollup, the text of `rollup`.
pub fn full_info(statm: &Statm, rollup: &str, page_size: u64) -> Value {
    let (mut uss, mut pss, mut swap) = (0, 0, 0);
    for (key, bytes) in rollup.lines().filter_map(counter) {
        match key {
            "Private_Clean" | "Private_Dirty" | "Private_Hugetlb" => uss += bytes,
            "Pss" => pss = bytes,
            "Swap" => swap = bytes,
            _ => {}
        }
    }
    json!({
        "rss": statm.resident * page_size,
        "vms": statm.size * page_size,
        "shared": statm.shared * page_size,
        "text": statm.text * page_size,
        "lib": statm.lib * page_size,
        "data": statm.data * page_size,
        "dirty": statm.dirty * page_size,
        "uss": uss,
        "pss": pss,
        "swap": swap,
    })
}

/// `memory_maps` as psutil's `memory_maps(grouped=True)`: one entry per
/// path, its counters summed over every mapping of it, in the order the
/// paths first appear. Anonymous mappings are `[anon]`; a ` (deleted)`
/// mark is kept, as the kernel wrote it, when no file of that name exists.
pub fn maps(smaps: &str) -> Value {
    let mut paths: Vec<(String, [u64; MAP_COUNTERS.len()])> = Vec::new();
    let mut current: Option<usize> = None;
    for line in smaps.lines() {
        if let Some((key, bytes)) = counter(line) {
            let slot = MAP_COUNTERS.iter().position(|(k, _)| *k == key);
            if let (Some(entry), Some(slot)) = (current, slot) {
                paths[entry].1[slot] += bytes;
            }
            continue;
        }
        let Some(path) = header_path(line) else {
            continue;
        };
        let path = grouped_name(path);
        current = Some(match paths.iter().position(|(p, _)| *p == path) {
            Some(i) => i,
            None => {
                paths.push((path, [0; MAP_COUNTERS.len()]));
                paths.len() - 1
            }
        });
    }
    let entries: Vec<Value> = paths
        .into_iter()
        .map(|(path, counters)| {
            let mut entry = serde_json::Map::new();
            entry.insert("path".into(), json!(path));
            for ((_, name), value) in MAP_COUNTERS.iter().zip(counters) {
                entry.insert((*name).into(), json!(value));
            }
            Value::Object(entry)
        })
        .collect();
    json!(entries)
}

/// The path of a mapping's header line
/// (`7f..-7f.. r-xp 00000000 08:01 1234    /usr/lib/libc.so.6`), empty for
/// an anonymous one; `None` for any other line.
fn header_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        let word = rest.trim_start();
        let end = word.find(' ').unwrap_or(word.len());
        if end == 0 {
            return None;
        }
        rest = &word[end..];
    }
    let (start, end) = line.split(' ').next()?.split_once('-')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(start) && hex(end)).then(|| rest.trim_start())
}

fn grouped_name(path: &str) -> String {
    if path.is_empty() {
        return "[anon]".into();
    }
    match path.strip_suffix(" (deleted)") {
        Some(former) if std::path::Path::new(former).exists() => former.into(),
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5610a0a00000-5610a0a02000 r--p 00000000 08:01 1183                       /usr/bin/sleep
Size:                  8 kB
Rss:                   8 kB
Pss:                   4 kB
Shared_Clean:          4 kB
Private_Clean:         4 kB
Private_Dirty:         0 kB
Swap:                  0 kB
VmFlags: rd mr mw me sd
5610a0a02000-5610a0a06000 r-xp 00002000 08:01 1183                       /usr/bin/sleep
Size:                 16 kB
Rss:                  16 kB
Pss:                  16 kB
Private_Clean:        16 kB
THPeligible:    0
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0 
Size:                132 kB
Rss:                  12 kB
Private_Dirty:        12 kB
Anonymous:            12 kB
Swap:                  8 kB
7ffd1c100000-7ffd1c101000 rw-p 00000000 00:00 0                          [stack]
Rss:                   4 kB
";

    #[test]
    fn maps_are_grouped_by_path_in_bytes() {
        let maps = maps(SMAPS);
        let maps = maps.as_array().unwrap();
        let paths: Vec<_> = maps.iter().map(|m| m["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["/usr/bin/sleep", "[anon]", "[stack]"]);
        assert_eq!(maps[0]["rss"], 24 * 1024);
        assert_eq!(maps[0]["pss"], 20 * 1024);
        assert_eq!(maps[0]["private_clean"], 20 * 1024);
        assert_eq!(maps[0]["shared_clean"], 4 * 1024);
        assert_eq!(maps[1]["anonymous"], 12 * 1024);
        assert_eq!(maps[1]["swap"], 8 * 1024);
        assert_eq!(maps[2]["rss"], 4 * 1024);
    }

    #[test]
    fn full_info_adds_private_pages_to_statm() {
        let rollup = "00400000-7fff0000 ---p 00000000 00:00 0 [rollup]\n\
            Rss: 300 kB\nPss: 120 kB\nPrivate_Clean: 8 kB\nPrivate_Dirty: 92 kB\n\
            Private_Hugetlb: 0 kB\nSwap: 16 kB\n";
        let statm = Statm::parse(b"100 75 50 2 0 30 0\n").unwrap();
        let info = full_info(&statm, rollup, 4096);
        assert_eq!(info["rss"], 75 * 4096);
        assert_eq!(info["vms"], 100 * 4096);
        assert_eq!(info["shared"], 50 * 4096);
        assert_eq!(info["uss"], 100 * 1024);
        assert_eq!(info["pss"], 120 * 1024);
        assert_eq!(info["swap"], 16 * 1024);
    }
}
