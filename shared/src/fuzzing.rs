//! Strategies for the fuzz tests: property tests (proptest) over every
//! parser of untrusted input — tokens, auth requests, every JSON body a
//! shard accepts, the internal join and renew requests, gateway paths.
//! Hostile strings, JSON shaped like keyfed's bodies with wrong types,
//! missing and extra fields, bodies that are not JSON at all, and
//! byte-level mutations of valid inputs.
//!
//! Compiled for this crate's tests and, with feature `fuzzing`, for the
//! other crates' (their dev-dependency). Every fuzz test's name contains
//! `fuzz`, so `cargo nextest run --workspace -E 'test(fuzz)'` runs them
//! all. Their default case counts keep the whole set to seconds (CI runs
//! it with the rest of the suite); `KEYFED_FUZZ_SCALE=<n>` multiplies
//! every count for a longer run (`scripts/fuzz`), and `PROPTEST_CASES`
//! sets one count for all.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};

/// A proptest config running `cases` cases times `KEYFED_FUZZ_SCALE`
/// (default 1), unless `PROPTEST_CASES` says otherwise (the `proptest!`
/// macro applies the environment on top).
pub fn config(cases: u32) -> Config {
    let scale = std::env::var("KEYFED_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    Config {
        cases: cases.saturating_mul(scale),
        // A failing case is reported with its shrunk input; bound the
        // shrinking of huge inputs so a failure is reported promptly.
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// Strings a parser should survive: short unicode (including controls,
/// NUL, bidi overrides, emoji), words from `words`, path and escape
/// tricks, and huge strings.
pub fn hostile_string(words: &'static [&'static str]) -> BoxedStrategy<String> {
    const ODD: &[&str] = &[
        "",
        " ",
        "\0",
        "a\0b",
        "\u{202e}evil",
        "💥",
        "é",
        "\u{fffd}",
        "..",
        "../..",
        "%2e%2e",
        "%00",
        "%FF",
        "\\",
        "null",
        "true",
        "0",
        "-1",
        "{}",
        "[]",
        "\"",
        "default",
    ];
    prop_oneof![
        4 => "\\PC{0,16}",
        2 => "(?s).{0,12}",
        3 => prop::sample::select(words).prop_map(str::to_owned),
        2 => prop::sample::select(ODD).prop_map(str::to_owned),
        1 => (prop::sample::select(&["x", "é", "💥", "/", "."][..]), 200usize..5_000)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => (60usize..70_000).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

/// A JSON scalar: null, booleans, integers (extremes included), floats,
/// hostile strings.
pub fn json_leaf(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => prop::sample::select(&[0i64, -1, 1, i64::MIN, i64::MAX, 600, 601][..])
            .prop_map(|n| json!(n)),
        1 => Just(json!(u64::MAX)),
        1 => prop::sample::select(&[1.5f64, -0.0, 1e308, 1e-308][..]).prop_map(|f| json!(f)),
        5 => hostile_string(words).prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value up to a few levels deep, its object keys drawn mostly
/// from `keys` (so it looks like the bodies being fuzzed).
pub fn json_value(
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> BoxedStrategy<Value> {
    json_leaf(words)
        .prop_recursive(5, 48, 6, move |inner| {
            let key = prop_oneof![
                6 => prop::sample::select(keys).prop_map(str::to_owned),
                1 => hostile_string(words),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// `value` mostly, else any JSON (a wrong type, null, a nested mess).
pub fn or_junk(
    value: BoxedStrategy<Value>,
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> BoxedStrategy<Value> {
    prop_oneof![4 => value, 1 => json_value(keys, words)].boxed()
}

/// An object with some of `fields`, each with a value of any type, and
/// sometimes an extra field.
pub fn shaped_object(
    fields: &'static [&'static str],
    words: &'static [&'static str],
) -> BoxedStrategy<Map<String, Value>> {
    let value = prop_oneof![3 => json_leaf(words), 1 => json_value(fields, words)];
    (
        prop::collection::vec((prop::sample::select(fields), value), 0..=fields.len()),
        prop::option::weighted(0.2, (hostile_string(words), json_leaf(words))),
    )
        .prop_map(|(present, extra)| {
            let mut obj: Map<String, Value> = present
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if let Some((k, v)) = extra {
                obj.insert(k, v);
            }
            obj
        })
        .boxed()
}

/// `{member: {fields...}}` — a Keystone entity body with wrong types,
/// missing and extra fields — or, less often, any JSON at all.
pub fn entity_body(
    member: &'static str,
    fields: &'static [&'static str],
    words: &'static [&'static str],
) -> BoxedStrategy<Value> {
    let wrapped = shaped_object(fields, words)
        .prop_map(move |obj| json!({ member: obj }))
        .boxed();
    or_junk(wrapped, fields, words)
}

/// Words that make auth requests reach deeper code: method and scope
/// names, the default domain, the test users of the shard fuzz.
pub const AUTH_WORDS: &[&str] = &[
    "password",
    "token",
    "totp",
    "default",
    "Default",
    "admin",
    "fuzz-user",
    "fuzz-password",
    "fuzz-project",
    "unscoped",
];

const AUTH_KEYS: &[&str] = &[
    "auth",
    "identity",
    "methods",
    "password",
    "token",
    "user",
    "id",
    "name",
    "domain",
    "scope",
    "project",
    "system",
    "all",
    "OS-TRUST:trust",
];

/// A `POST /v3/auth/tokens` body built structurally: random methods, the
/// identity and scope objects present, missing or of wrong types, with
/// hostile strings.
pub fn auth_request() -> BoxedStrategy<Value> {
    let w = AUTH_WORDS;
    let k = AUTH_KEYS;
    let string = || or_junk(hostile_string(w).prop_map(Value::String).boxed(), k, w);
    let domain = || {
        or_junk(
            prop_oneof![
                string().prop_map(|id| json!({ "id": id })),
                string().prop_map(|name| json!({ "name": name })),
            ]
            .boxed(),
            k,
            w,
        )
    };
    let named = move || {
        (
            prop::option::of(string()),
            prop::option::of(string()),
            prop::option::of(domain()),
        )
            .prop_map(|(id, name, domain)| {
                let mut obj = Map::new();
                for (key, v) in [("id", id), ("name", name), ("domain", domain)] {
                    if let Some(v) = v {
                        obj.insert(key.into(), v);
                    }
                }
                Value::Object(obj)
            })
            .boxed()
    };
    let user = (named(), prop::option::of(string())).prop_map(|(mut user, password)| {
        if let (Value::Object(obj), Some(p)) = (&mut user, password) {
            obj.insert("password".into(), p);
        }
        user
    });
    let methods = or_junk(
        prop::collection::vec(string(), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        k,
        w,
    );
    let scope = prop_oneof![
        Just(None),
        string().prop_map(Some),
        named().prop_map(|p| Some(json!({ "project": p }))),
        domain().prop_map(|d| Some(json!({ "domain": d }))),
        json_value(k, w).prop_map(|all| Some(json!({ "system": { "all": all } }))),
        json_value(k, w).prop_map(Some),
    ];
    let structured = (
        methods,
        prop::option::of(or_junk(
            user.prop_map(|u| json!({ "user": u })).boxed(),
            k,
            w,
        )),
        prop::option::of(or_junk(
            string().prop_map(|id| json!({ "id": id })).boxed(),
            k,
            w,
        )),
        scope,
    )
        .prop_map(|(methods, password, token, scope)| {
            let mut identity = Map::new();
            identity.insert("methods".into(), methods);
            if let Some(p) = password {
                identity.insert("password".into(), p);
            }
            if let Some(t) = token {
                identity.insert("token".into(), t);
            }
            let mut auth = Map::new();
            auth.insert("identity".into(), Value::Object(identity));
            if let Some(s) = scope {
                auth.insert("scope".into(), s);
            }
            json!({ "auth": auth })
        })
        .boxed();
    // Now and then the whole body of a wrong shape.
    prop_oneof![9 => structured, 1 => json_value(k, w)].boxed()
}

/// A request body as bytes: mostly `json` serialized, else bytes that are
/// not JSON, truncated JSON, deep nesting, huge numbers.
pub fn body_bytes(json: BoxedStrategy<Value>) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        12 => json.clone().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (json, any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let mut text = v.to_string().into_bytes();
            text.truncate(cut.index(text.len() + 1));
            text
        }),
        1 => (1usize..3_000, any::<bool>()).prop_map(|(depth, arrays)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let inner = if arrays { "" } else { "1" };
            format!("{}{inner}{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }),
        1 => prop::sample::select(&[
            "1e999999", "-0", "[]", "\"x\"", "null", "{\"a\":1,\"a\":2}", "{} {}", "\u{feff}{}", "",
        ][..])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
    .boxed()
}

/// A byte-level mutation of a valid input.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit.
    Flip(prop::sample::Index, u8),
    /// Keep only a prefix.
    Truncate(prop::sample::Index),
    /// Insert bytes at a position.
    Insert(prop::sample::Index, Vec<u8>),
    /// Remove up to `n` bytes at a position.
    Remove(prop::sample::Index, usize),
    /// Repeat a slice in place.
    Repeat(prop::sample::Index, usize, usize),
}

impl Mutation {
    /// Any mutation.
    pub fn any() -> BoxedStrategy<Mutation> {
        let at = any::<prop::sample::Index>;
        prop_oneof![
            3 => (at(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
            1 => at().prop_map(Mutation::Truncate),
            1 => (at(), prop::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(i, b)| Mutation::Insert(i, b)),
            1 => (at(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
            1 => (at(), 1usize..64, 2usize..64).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        ]
        .boxed()
    }

    /// `input` mutated.
    pub fn apply(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        let len = out.len();
        match self {
            Mutation::Flip(i, bit) if len > 0 => out[i.index(len)] ^= 1 << bit,
            Mutation::Flip(..) => {}
            Mutation::Truncate(i) => out.truncate(i.index(len.max(1))),
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let at = i.index(len);
                out.drain(at..(at + n).min(len));
            }
            Mutation::Remove(..) => {}
            Mutation::Repeat(i, n, k) if len > 0 => {
                let at = i.index(len);
                let slice = out[at..(at + n).min(len)].to_vec();
                let repeated = slice.repeat(*k);
                out.splice(at..at, repeated);
            }
            Mutation::Repeat(..) => {}
        }
        out
    }

    /// `input` mutated, as text (invalid UTF-8 replaced).
    pub fn apply_str(&self, input: &str) -> String {
        String::from_utf8_lossy(&self.apply(input.as_bytes())).into_owned()
    }
}
