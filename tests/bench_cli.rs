//! `shmq bench` runs every mechanism and reports what its JSON promises. No
//! timing is asserted: the figures belong in the README, not in a test.

use std::process::Command;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

fn rows(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(SHMQ).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pingpong_reports_every_mechanism_with_percentiles() {
    let rows = rows(&[
        "bench", "pingpong", "--size", "8,4KiB", "--msgs", "2000", "--json",
    ]);
    for mech in ["floor", "ring", "shmq", "pipe", "uds", "crossbeam"] {
        for size in [8, 4096] {
            let r = rows
                .iter()
                .find(|r| r["mechanism"] == mech && r["size"] == size)
                .unwrap_or_else(|| panic!("no {mech} {size}"));
            assert_eq!(r["test"], "pingpong");
            for k in ["p50", "p90", "p99", "p999", "p9999", "max", "mean"] {
                assert!(r["rtt_ns"][k].as_f64().unwrap() > 0.0, "{mech} {k}");
            }
            assert!(r["rtt_ns"]["p50"].as_u64() <= r["rtt_ns"]["max"].as_u64());
        }
    }
    let shmq = rows.iter().find(|r| r["mechanism"] == "shmq").unwrap();
    assert!(shmq["p50_vs_floor"].as_f64().unwrap() > 0.0);
}

#[test]
fn throughput_reports_rates_for_every_shape() {
    let rows = rows(&[
        "bench",
        "throughput",
        "--size",
        "64",
        "--msgs",
        "2000",
        "--groups",
        "2",
        "--members",
        "2",
        "--json",
    ]);
    let tests: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["mechanism"].as_str().unwrap().to_string(),
                r["test"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("floor", "1->1"),
        ("ring", "1->1"),
        ("shmq", "1->1"),
        ("pipe", "1->1"),
        ("uds", "1->1"),
        ("crossbeam", "1->1"),
        ("shmq", "2->1"),
        ("shmq", "1->2 groups"),
        ("shmq", "1->group of 2"),
        ("shmq", "1->1 unblocked"),
        ("shmq", "1->2 groups unblocked"),
    ] {
        assert!(
            tests.contains(&(want.0.to_string(), want.1.to_string())),
            "missing {want:?} in {tests:?}"
        );
    }
    for r in &rows {
        let m = r["msgs_per_s"].as_f64().unwrap();
        assert!(m > 0.0);
        assert!((r["mb_per_s"].as_f64().unwrap() - m * 64.0 / 1e6).abs() < 1e-6 * m);
    }
    // The broadcast row is compared with the one-group row of the same kind.
    let one = rows.iter().find(|r| r["test"] == "1->1 unblocked").unwrap();
    let two = rows
        .iter()
        .find(|r| r["test"] == "1->2 groups unblocked")
        .unwrap();
    let ratio = two["vs_one_group"].as_f64().unwrap();
    let want = two["msgs_per_s"].as_f64().unwrap() / one["msgs_per_s"].as_f64().unwrap();
    assert!((ratio - want).abs() < 1e-9 * want, "{ratio} vs {want}");
    assert!(one.get("vs_one_group").is_none());
}

#[test]
fn bad_bench_arguments_are_one_line_errors() {
    let out = Command::new(SHMQ)
        .args(["bench", "pingpong", "--size", "1MiB"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 KiB"));
    let out = Command::new(SHMQ)
        .args(["bench", "pingpong", "--rounds", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rounds"));
}

#[test]
fn wakeup_compares_shmq_with_a_bare_futex() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("wake.svg");
    let rows = rows(&[
        "bench",
        "wakeup",
        "--msgs",
        "2000",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.starts_with("<svg") && drawn.matches("<polyline").count() == 2,
        "one curve per mechanism"
    );
    let mechs: Vec<&str> = rows
        .iter()
        .map(|r| r["mechanism"].as_str().unwrap())
        .collect();
    assert_eq!(mechs, ["floor", "shmq"]);
    for r in &rows {
        assert_eq!(r["test"], "wakeup");
        assert!(r["rtt_ns"]["p50"].as_u64().unwrap() > 0);
    }
    assert!(rows[1]["p50_vs_floor"].as_f64().unwrap() > 0.0);
}

#[test]
fn spill_bench_reports_rates_latency_disk_and_catch_up() {
    let disk = tempfile::tempdir().unwrap();
    let rows = rows(&[
        "bench",
        "spill",
        "--size",
        "64",
        "--msgs",
        "3000",
        "--rate",
        "50000",
        "--spill-dir",
        disk.path().to_str().unwrap(),
        "--json",
    ]);
    let find = |mech: &str, test: &str, spilling: Option<u64>| {
        rows.iter()
            .find(|r| {
                r["mechanism"] == mech
                    && r["test"] == test
                    && spilling.is_none_or(|s| r["spilling_groups"] == s)
            })
            .unwrap_or_else(|| panic!("no {mech} {test} {spilling:?} in {rows:?}"))
    };
    for s in [0, 1] {
        let r = find("shmq", "spill rate", Some(s));
        assert_eq!(r["size"], 64);
        assert!(r["msgs_per_s"].as_f64().unwrap() > 0.0);
        let l = find("shmq", "spill latency", Some(s));
        assert_eq!(l["rate"], 50000);
        let p50 = l["latency_ns"]["p50"].as_u64().unwrap();
        assert!(p50 > 0 && p50 <= l["latency_ns"]["max"].as_u64().unwrap());
    }
    assert!(
        find("shmq", "spill rate", Some(1))["vs_none"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let spill = find("shmq", "spill write", None);
    let plain = find("write", "spill write", None);
    // Every message after the first half ring went to the log.
    assert!(spill["messages"].as_u64().unwrap() > 20_000, "{spill}");
    assert_eq!(spill["bytes"], plain["bytes"]);
    assert_eq!(spill["fsync"], "never");
    assert!(spill["vs_write"].as_f64().unwrap() > 0.0);
    assert!(
        find("shmq", "catch-up", None)["msgs_per_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The bench cleans up what it wrote.
    assert_eq!(std::fs::read_dir(disk.path()).unwrap().count(), 0);
}

#[test]
fn capacity_sets_the_rings_and_is_checked_first() {
    // A small ring works for small messages (the ring wraps many times).
    let rows = rows(&[
        "bench",
        "pingpong",
        "--size",
        "64",
        "--msgs",
        "2000",
        "--capacity",
        "4KiB",
        "--only",
        "shmq",
        "--json",
    ]);
    assert_eq!(rows.len(), 1);
    // Refused before anything runs, with the reason.
    for (capacity, size, says) in [
        ("100", "64", "not a power of two"),
        ("64KiB", "64KiB", "does not fit a ring of 65536 bytes"),
    ] {
        let out = Command::new(SHMQ)
            .args(["bench", "pingpong", "--size", size, "--capacity", capacity])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(out.stdout.is_empty(), "ran something: {err}");
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The one row of `mechanism` and `test` (every round in it).
fn the_row<'a>(
    rows: &'a [serde_json::Value],
    mechanism: &str,
    test: &str,
) -> &'a serde_json::Value {
    let found: Vec<_> = rows
        .iter()
        .filter(|r| r["mechanism"] == mechanism && r["test"] == test)
        .collect();
    assert_eq!(found.len(), 1, "{mechanism} {test}: {found:?}");
    found[0]
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `--rounds N`: one row per mechanism, test and size, with every round's
/// figure; the rate is the median round's, and the ratio to the floor the
/// median of the per-round ratios (each shmq round against the floor of the
/// same round), with their range.
#[test]
fn rounds_report_medians_of_per_round_ratios() {
    let rows = rows(&[
        "bench",
        "throughput",
        "--size",
        "64",
        "--msgs",
        "2000",
        "--rounds",
        "3",
        "--only",
        "floor,shmq",
        "--json",
    ]);
    let floor = the_row(&rows, "floor", "1->1");
    let shmq = the_row(&rows, "shmq", "1->1");
    let (f, s) = (
        floats(&floor["msgs_per_s_rounds"]),
        floats(&shmq["msgs_per_s_rounds"]),
    );
    assert_eq!((f.len(), s.len()), (3, 3));
    assert_eq!(shmq["rounds"], 3);
    assert_eq!(shmq["msgs_per_s"].as_f64().unwrap(), median(s.clone()));
    let ratios: Vec<f64> = s.iter().zip(&f).map(|(s, f)| s / f).collect();
    let got = shmq["vs_floor"].as_f64().unwrap();
    assert!((got - median(ratios.clone())).abs() < 1e-9 * got, "{shmq}");
    let range = floats(&shmq["vs_floor_range"]);
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    assert!((range[0] - lo).abs() < 1e-9 * lo && (range[1] - hi).abs() < 1e-9 * hi);
    // The unblocked broadcast row: its ratio to the unblocked 1 -> 1, per round.
    let one = the_row(&rows, "shmq", "1->1 unblocked");
    let eight = the_row(&rows, "shmq", "1->8 groups unblocked");
    let per: Vec<f64> = floats(&eight["msgs_per_s_rounds"])
        .iter()
        .zip(floats(&one["msgs_per_s_rounds"]))
        .map(|(e, o)| e / o)
        .collect();
    let got = eight["vs_one_group"].as_f64().unwrap();
    assert!((got - median(per)).abs() < 1e-9 * got, "{eight}");

    // Latency: percentiles over every round's samples, each round's p50.
    let rows = rows_of_pingpong_rounds();
    let shmq = rows.iter().find(|r| r["mechanism"] == "shmq").unwrap();
    let p50s = floats(&shmq["p50_rounds"]);
    assert_eq!(p50s.len(), 2);
    let all = shmq["rtt_ns"]["p50"].as_f64().unwrap();
    assert!(all > 0.0 && shmq["rtt_ns"]["max"].as_f64().unwrap() >= all);
    let r = floats(&shmq["p50_vs_floor_range"]);
    let mid = shmq["p50_vs_floor"].as_f64().unwrap();
    assert!(r[0] <= mid && mid <= r[1], "{shmq}");
}

fn rows_of_pingpong_rounds() -> Vec<serde_json::Value> {
    rows(&[
        "bench",
        "pingpong",
        "--size",
        "64",
        "--msgs",
        "2000",
        "--rounds",
        "2",
        "--only",
        "floor,shmq",
        "--json",
    ])
}
