//! Failpoints: pauses at named points of a write, so fault tests can stop
//! (SIGSTOP) or kill a shard exactly there. Off unless the environment
//! variable `KEYFED_FAILPOINTS` names some when the shard starts:
//! `<point>=pause:<millis>:<key prefix>[;…]` pauses `<millis>` at `<point>`
//! for entities whose names-index key starts with the prefix (for example
//! `name.reserved=pause:3000:project/default/fp-`), logging
//! `failpoint reached` first. Points: `name.reserved` (the name is
//! reserved, the entity not yet stored), `name.stored` (the entity is
//! committed, the answer not yet sent) and `global.reserved` (a domain's or
//! role's name is reserved, the global entity not yet written).

use std::time::Duration;

/// The environment variable read at start.
pub const FAILPOINTS_ENV: &str = "KEYFED_FAILPOINTS";

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pause {
    point: String,
    millis: u64,
    prefix: String,
}

/// The failpoints a shard was started with.
#[derive(Clone, Debug, Default)]
pub struct Failpoints(Vec<Pause>);

impl Failpoints {
    /// Parses `spec` (see the module doc); malformed entries are ignored
    /// with a warning.
    pub fn parse(spec: &str) -> Self {
        let parse_one = |entry: &str| -> Option<Pause> {
            let (point, action) = entry.split_once('=')?;
            let mut parts = action.splitn(3, ':');
            if parts.next()? != "pause" {
                return None;
            }
            let millis = parts.next()?.parse().ok()?;
            Some(Pause {
                point: point.trim().to_owned(),
                millis,
                prefix: parts.next().unwrap_or("").to_owned(),
            })
        };
        Self(
            spec.split(';')
                .filter(|e| !e.trim().is_empty())
                .filter_map(|e| {
                    let parsed = parse_one(e);
                    if parsed.is_none() {
                        tracing::warn!(entry = e, "ignoring a malformed failpoint");
                    }
                    parsed
                })
                .collect(),
        )
    }

    /// The failpoints named by `KEYFED_FAILPOINTS`, if set.
    pub fn from_env() -> Self {
        std::env::var(FAILPOINTS_ENV)
            .map(|s| Self::parse(&s))
            .unwrap_or_default()
    }

    /// Pauses here if a failpoint names `point` and `key`.
    pub async fn hit(&self, point: &str, key: &str) {
        for p in &self.0 {
            if p.point == point && key.starts_with(&p.prefix) {
                tracing::warn!(point, key, millis = p.millis, "failpoint reached");
                tokio::time::sleep(Duration::from_millis(p.millis)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_parse_pauses_and_skip_the_rest() {
        let f = Failpoints::parse("a=pause:10:project/x;b=crash;c=pause:zz:;d=pause:5");
        assert_eq!(
            f.0,
            vec![
                Pause {
                    point: "a".into(),
                    millis: 10,
                    prefix: "project/x".into()
                },
                Pause {
                    point: "d".into(),
                    millis: 5,
                    prefix: String::new()
                },
            ]
        );
        assert!(Failpoints::parse("").0.is_empty());
    }
}
