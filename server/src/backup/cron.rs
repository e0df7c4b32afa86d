//! Cron schedules (UTC) for backups, and the retention rule that prunes them.
//!
//! A schedule is five fields, `minute hour day-of-month month day-of-week`, or
//! six with seconds first; each field is `*`, a number, a range `a-b`, a list
//! `a,b`, any of them with a step `/n`, and months and weekdays may be named
//! (`jan`, `mon`). Day-of-week 0 and 7 are Sunday. As in classic cron, when
//! both day fields are restricted a day matching either one fires. Shorthands:
//! `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
//! (`@annually`).

use std::collections::BTreeSet;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field as a bit set over `lo..=hi`.
fn field(text: &str, lo: u32, hi: u32, names: &[&str], name_base: u32, what: &str) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + name_base);
        }
        let n: u32 = s.parse().map_err(|_| format!("{what}: {s:?} is not a number"))?;
        if n < lo || n > hi {
            return Err(format!("{what}: {n} is outside {lo}-{hi}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{what}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: a step of 0"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if item.contains('/') => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return Err(format!("{what}: range {a}-{b} runs backwards"));
        }
        for v in (a..=b).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn has(bits: u64, v: i64) -> bool {
    (0..64).contains(&v) && bits & (1 << v) != 0
}

impl Schedule {
    /// Parse a schedule (see the module docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t => t,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match parts.len() {
            5 => ("0", &parts[..]),
            6 => (parts[0], &parts[1..]),
            n => {
                return Err(format!("backup.schedule {text:?}: {n} fields; a cron schedule has 5 (or 6 with seconds)"))
            }
        };
        let ctx = |e: String| format!("backup.schedule {text:?}: {e}");
        let mut weekdays = field(rest[4], 0, 7, &WEEKDAYS, 0, "day of week").map_err(ctx)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self {
            seconds: field(sec, 0, 59, &[], 0, "second").map_err(ctx)?,
            minutes: field(rest[0], 0, 59, &[], 0, "minute").map_err(ctx)?,
            hours: field(rest[1], 0, 23, &[], 0, "hour").map_err(ctx)?,
            days: field(rest[2], 1, 31, &[], 0, "day of month").map_err(ctx)?,
            months: field(rest[3], 1, 12, &MONTHS, 1, "month").map_err(ctx)?,
            weekdays,
            days_any: rest[2] == "*",
            weekdays_any: rest[4] == "*",
        })
    }

    fn day_matches(&self, days_since_epoch: i64) -> bool {
        let (_, m, d) = crate::tenancy::clock::civil_from_days(days_since_epoch);
        // 1970-01-01 was a Thursday (4).
        let wd = (days_since_epoch + 4).rem_euclid(7);
        if !has(self.months, m) {
            return false;
        }
        let (dom, dow) = (has(self.days, d), has(self.weekdays, wd));
        match (self.days_any, self.weekdays_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first time strictly after `after` (seconds since the epoch) that
    /// the schedule fires; `None` when it never does within eight years
    /// (`30 2 31 2 *`: February 31st).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let start = after + 1;
        let first_day = start.div_euclid(86_400);
        for day in first_day..first_day + 366 * 8 {
            if !self.day_matches(day) {
                continue;
            }
            let base = day * 86_400;
            for h in (0..24).filter(|h| has(self.hours, *h)) {
                if base + h * 3600 + 3599 < start {
                    continue;
                }
                for m in (0..60).filter(|m| has(self.minutes, *m)) {
                    for s in (0..60).filter(|s| has(self.seconds, *s)) {
                        let t = base + h * 3600 + m * 60 + s;
                        if t >= start {
                            return Some(t);
                        }
                    }
                }
            }
        }
        None
    }
}

/// Which of `backups` (creation time in seconds, key) to keep: the newest of
/// each of the last `keep_daily` days that have one (UTC) and of each of the
/// last `keep_weekly` ISO weeks (Monday to Sunday) that have one. With both
/// zero, all are kept.
pub fn retained(backups: &[(i64, String)], keep_daily: usize, keep_weekly: usize) -> BTreeSet<String> {
    if keep_daily == 0 && keep_weekly == 0 {
        return backups.iter().map(|(_, k)| k.clone()).collect();
    }
    let mut newest_first: Vec<&(i64, String)> = backups.iter().collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    let mut keep = BTreeSet::new();
    // Day 0 was a Thursday: shifting by 3 makes buckets of seven start on Mondays.
    type Bucket = fn(i64) -> i64;
    let buckets: [(Bucket, usize); 2] =
        [(|t| t.div_euclid(86_400), keep_daily), (|t| (t.div_euclid(86_400) + 3).div_euclid(7), keep_weekly)];
    for (bucket, n) in buckets {
        let mut seen = BTreeSet::new();
        for (t, key) in &newest_first {
            if seen.len() == n {
                break;
            }
            if seen.insert(bucket(*t)) {
                keep.insert(key.clone());
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::clock::parse as at;

    fn next(s: &str, after: &str) -> String {
        let t = Schedule::parse(s).unwrap().next_after(at(after).unwrap()).unwrap();
        crate::tenancy::clock::format(t)
    }

    #[test]
    fn schedules_fire_when_cron_would() {
        assert_eq!(next("30 2 * * *", "2026-12-03T10:00:00Z"), "2026-12-04T02:30:00Z");
        assert_eq!(next("30 2 * * *", "2026-12-03T02:29:59Z"), "2026-12-03T02:30:00Z");
        assert_eq!(next("30 2 * * *", "2026-12-03T02:30:00Z"), "2026-12-04T02:30:00Z");
        assert_eq!(next("*/15 * * * *", "2026-12-03T10:07:00Z"), "2026-12-03T10:15:00Z");
        assert_eq!(next("*/2 * * * * *", "2026-12-03T10:07:01Z"), "2026-12-03T10:07:02Z");
        assert_eq!(next("0 0 1 * *", "2026-12-03T10:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next("0 3 * * sun", "2026-12-03T10:00:00Z"), "2026-12-06T03:00:00Z"); // a Thursday
        assert_eq!(next("0 3 * * 7", "2026-12-03T10:00:00Z"), "2026-12-06T03:00:00Z");
        assert_eq!(next("0 0 29 feb *", "2026-12-03T10:00:00Z"), "2028-02-29T00:00:00Z");
        assert_eq!(next("0 9-17/4 * * mon-fri", "2026-12-04T18:00:00Z"), "2026-12-07T09:00:00Z");
        // Both day fields restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * fri", "2026-12-03T10:00:00Z"), "2026-12-04T00:00:00Z");
        assert_eq!(next("@weekly", "2026-12-03T10:00:00Z"), "2026-12-06T00:00:00Z");
        assert_eq!(next("@hourly", "2026-12-03T10:00:00Z"), "2026-12-03T11:00:00Z");
        assert!(Schedule::parse("0 0 31 2 *").unwrap().next_after(0).is_none());
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (s, why) in [
            ("* * * *", "4 fields"),
            ("61 * * * *", "61 is outside 0-59"),
            ("* 24 * * *", "hour: 24"),
            ("*/0 * * * *", "step of 0"),
            ("5-1 * * * *", "backwards"),
            ("* * * smarch *", "\"smarch\" is not a number"),
            ("* * 0 * *", "day of month: 0"),
        ] {
            let e = Schedule::parse(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn retention_keeps_the_newest_per_day_and_per_week() {
        let t = |s: &str| at(s).unwrap();
        let backups: Vec<(i64, String)> = [
            "2026-11-16T01:00:00Z", // Monday of an older week
            "2026-11-20T01:00:00Z", // same week, newer
            "2026-11-25T01:00:00Z", // the week of Nov 23
            "2026-11-30T01:00:00Z", // Monday, week of Nov 30
            "2026-12-02T01:00:00Z",
            "2026-12-02T13:00:00Z", // newest of Dec 2
            "2026-12-03T01:00:00Z", // newest of Dec 3 and of its week
        ]
        .iter()
        .map(|s| (t(s), (*s).to_owned()))
        .collect();
        let keep = |d, w| retained(&backups, d, w).into_iter().collect::<Vec<_>>();
        assert_eq!(keep(2, 0), ["2026-12-02T13:00:00Z", "2026-12-03T01:00:00Z"]);
        assert_eq!(keep(0, 3), ["2026-11-20T01:00:00Z", "2026-11-25T01:00:00Z", "2026-12-03T01:00:00Z"]);
        assert_eq!(keep(1, 2), ["2026-11-25T01:00:00Z", "2026-12-03T01:00:00Z"], "the daily and weekly picks overlap");
        assert_eq!(keep(0, 0).len(), backups.len());
        assert_eq!(keep(100, 100).len(), 6, "one of Dec 2's two goes");
    }
}
