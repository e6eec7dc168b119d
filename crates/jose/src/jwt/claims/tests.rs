#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};

use std::sync::OnceLock;

use super::{Claims, ClaimsText};
use crate::error::ErrorCode;
use crate::json::{self, MAX_DEPTH};

/// What verification did before the one-pass parser: a full strict parse, then the types.
fn reference(text: &str) -> Result<Claims, ErrorCode> {
    match json::parse(text.as_bytes()) {
        Ok(Value::Object(map)) => Claims::from_map(map).map_err(|e| e.code()),
        Ok(_) | Err(_) => Err(ErrorCode::JwtInvalid),
    }
}

/// The one-pass parser must accept and refuse exactly as the reference does, with the same
/// code, and when it accepts, read the same claims and build the same map.
fn agrees(text: &str) -> Result<Claims, ErrorCode> {
    let fast = Claims::parse(text.to_owned()).map_err(|e| e.code());
    let slow = reference(text);
    match (&fast, &slow) {
        (Ok(f), Ok(s)) => {
            assert_eq!(f.as_map().unwrap(), s.as_map().unwrap(), "{text}");
            assert_eq!(f.iss(), s.iss(), "{text}");
            assert_eq!(f.sub(), s.sub(), "{text}");
            assert_eq!(f.jti(), s.jti(), "{text}");
            assert_eq!(f.aud(), s.aud(), "{text}");
            assert_eq!(f.aud_iter().collect::<Vec<_>>(), s.aud(), "{text}");
            assert_eq!(
                (f.exp(), f.nbf(), f.iat()),
                (s.exp(), s.nbf(), s.iat()),
                "{text}"
            );
            assert_eq!(
                f.client_id(),
                s.get("client_id").unwrap().and_then(Value::as_str),
                "{text}"
            );
            assert_eq!(
                f.scope(),
                s.get("scope").unwrap().and_then(Value::as_str),
                "{text}"
            );
            assert_eq!(f.client_id(), s.client_id(), "{text}");
            assert_eq!(f.scope(), s.scope(), "{text}");
            for name in [
                "iss",
                "sub",
                "jti",
                "aud",
                "exp",
                "nbf",
                "iat",
                "x",
                "scope",
                "client_id",
                "cnf",
            ] {
                assert_eq!(
                    f.contains(name).unwrap(),
                    s.as_map().unwrap().contains_key(name),
                    "{text} {name}"
                );
            }
        }
        (Err(f), Err(s)) => assert_eq!(f, s, "{text}"),
        _ => panic!(
            "{text}: one-pass {:?}, reference {:?}",
            fast.is_ok(),
            slow.is_ok()
        ),
    }
    fast
}

fn accepted(text: &str) -> Claims {
    agrees(text).unwrap_or_else(|e| panic!("{text} refused: {e:?}"))
}

fn refused(text: &str, code: ErrorCode) {
    assert_eq!(agrees(text).err(), Some(code), "{text}");
}

#[test]
fn reads_registered_claims_and_keeps_the_rest() {
    let c = accepted(
        r#"{"iss":"https://i","sub":"s","aud":["a","b"],"exp":10,"nbf":-5,"iat":7.9,
            "jti":"j","scope":"x y","cnf":{"jkt":"t"},"amr":["pwd"]}"#,
    );
    assert_eq!(c.iss(), Some("https://i"));
    assert_eq!(c.aud(), ["a", "b"]);
    assert_eq!((c.exp(), c.nbf(), c.iat()), (Some(10), Some(-5), Some(7)));
    assert_eq!(c.get("cnf").unwrap(), Some(&json!({"jkt": "t"})));
    accepted(r#"{"aud":"one"}"#);
    accepted(r#"{"aud":[]}"#);
    accepted("{}");
    accepted(r#"{"iss":"a\"b\u00e9\n","sub":"é","aud":["\u0061"]}"#);
    accepted(r#"{"exp":1e3,"nbf":-0,"iat":9223372036854775807}"#);
    accepted(r#"{"exp":null_not}"#.replace("null_not", "0.5").as_str());
}

#[test]
fn duplicates_are_refused_at_every_depth() {
    for text in [
        r#"{"iss":"a","iss":"a"}"#,
        r#"{"x":1,"x":2}"#,
        r#"{"x":{"y":1,"y":1}}"#,
        r#"{"x":[{"y":1},{"z":[{"a":1,"a":1}]}]}"#,
        r#"{"aud":[{"a":1,"a":2}]}"#,
        r#"{"iss":{"a":1,"a":2}}"#,
        r#"{"exp":[[{"a":1,"a":2}]]}"#,
        // Escapes decode before comparison.
        r#"{"a":1,"\u0061":2}"#,
        r#"{"iss":"x","\u0069ss":"y"}"#,
        r#"{"x":{"k\u0065y":1,"key":2}}"#,
        r#"[{"a":1,"a":2}]"#,
    ] {
        refused(text, ErrorCode::JwtInvalid);
    }
    // The same name in different objects is fine, and so is "\u0061" once.
    accepted(r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}],"\u0062b":5}"#);
}

#[test]
fn large_objects_still_catch_duplicates() {
    for n in [15, 16, 17, 40] {
        let members: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let ok = format!("{{{}}}", members.join(","));
        accepted(&ok);
        accepted(&format!(r#"{{"x":{ok}}}"#));
        for dup in [0, n / 2, n - 1] {
            let bad = format!("{{{},\"k{dup}\":0}}", members.join(","));
            refused(&bad, ErrorCode::JwtInvalid);
            refused(&format!(r#"{{"x":{bad}}}"#), ErrorCode::JwtInvalid);
        }
    }
}

#[test]
fn depth_limit_matches_the_strict_parser() {
    for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}"), ("[{\"b\":", "}]")] {
            let nest = |inner: &str| {
                let mut s = open.repeat(depth);
                s.push_str(inner);
                s.push_str(&close.repeat(depth));
                s
            };
            for inner in ["1", "[]", "{}", r#""s""#] {
                let nested = nest(inner);
                for text in [
                    nested.clone(),
                    format!(r#"{{"x":{nested}}}"#),
                    format!(r#"{{"aud":{nested}}}"#),
                    format!(r#"{{"iss":{nested}}}"#),
                    format!(r#"{{"aud":["a",{nested}]}}"#),
                ] {
                    let _ = agrees(&text);
                }
            }
        }
    }
    let very_deep = format!(r#"{{"x":{}}}"#, "[".repeat(100_000));
    refused(&very_deep, ErrorCode::JwtInvalid);
}

#[test]
fn wrongly_typed_registered_claims_are_refused() {
    for text in [
        r#"{"iss":5}"#,
        r#"{"sub":null}"#,
        r#"{"jti":["j"]}"#,
        r#"{"aud":5}"#,
        r#"{"aud":["a",5]}"#,
        r#"{"aud":[["a"]]}"#,
        r#"{"aud":{"a":"b"}}"#,
        r#"{"exp":"1"}"#,
        r#"{"nbf":true}"#,
        r#"{"iat":[1]}"#,
        r#"{"exp":1e300}"#,
        r#"{"exp":18446744073709551615}"#,
        r#"{"exp":-1e16}"#,
    ] {
        refused(text, ErrorCode::JwtClaimInvalid);
    }
    // The first failing claim in `from_map`'s order is reported, wherever it stands.
    let e = Claims::parse(r#"{"exp":"x","iss":5}"#.into()).unwrap_err();
    assert!(e.reason().contains("iss"), "{}", e.reason());
    // A JSON error anywhere outranks a claim type error.
    refused(r#"{"iss":5,"x":{"a":1,"a":1}}"#, ErrorCode::JwtInvalid);
}

#[test]
fn malformed_payloads_are_refused() {
    for text in [
        "",
        " ",
        "[1]",
        "\"s\"",
        "1",
        "null",
        "{",
        r#"{"a":1} x"#,
        r#"{"a":1}{}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":01}"#,
        r#"{'a':1}"#,
        "{\"a\":\"\u{1}\"}",
    ] {
        refused(text, ErrorCode::JwtInvalid);
    }
    accepted(" {\"a\" : 1 } \n");
}

/// The outcomes `json::parse` gives at its depth limit, asserted for it and for the claims
/// parser. The top-level object is the first level. An array opens a level for its elements
/// (checked even when it is empty), an object only for its members' values, so an empty
/// object one level past the limit is still accepted by `json::parse`, and so here.
#[test]
fn depth_limit_outcomes() {
    // `levels` containers in all, counting the top-level claims object.
    let arrays = |levels: usize, inner: &str| {
        let n = levels - 1;
        format!(r#"{{"x":{}{inner}{}}}"#, "[".repeat(n), "]".repeat(n))
    };
    let objects = |levels: usize, inner: &str| {
        let n = levels - 1;
        format!(
            r#"{{"x":{}{inner}{}}}"#,
            r#"{"a":"#.repeat(n),
            "}".repeat(n)
        )
    };
    let mixed = |levels: usize, inner: &str| {
        let n = levels - 1;
        let open: String = (0..n)
            .map(|i| if i % 2 == 0 { "[" } else { r#"{"b":"# })
            .collect();
        let close: String = (0..n)
            .rev()
            .map(|i| if i % 2 == 0 { "]" } else { "}" })
            .collect();
        format!(r#"{{"x":{open}{inner}{close}}}"#)
    };
    let json_ok = |text: &str| json::parse(text.as_bytes()).is_ok();
    // Refused by `json::parse` for its depth, not for anything else.
    let json_too_deep = |text: &str| {
        json::parse(text.as_bytes()).is_err_and(|e| {
            e.code() == ErrorCode::JsonInvalid
                && e.reason()
                    .starts_with(&format!("nesting deeper than {MAX_DEPTH}"))
        })
    };
    for inner in ["1", r#""s""#, "[]", "null"] {
        // `inner` of `[]` is itself a level.
        let extra = usize::from(inner == "[]");
        for (name, build) in [
            ("arrays", &arrays as &dyn Fn(usize, &str) -> String),
            ("objects", &objects),
            ("mixed", &mixed),
        ] {
            let at = build(MAX_DEPTH - extra, inner);
            let over = build(MAX_DEPTH + 1 - extra, inner);
            assert!(
                json_ok(&at),
                "{name} {inner}: json::parse refuses the limit"
            );
            assert!(
                json_too_deep(&over),
                "{name} {inner}: json::parse accepts past the limit, or refuses it for another reason"
            );
            accepted(&at);
            refused(&over, ErrorCode::JwtInvalid);
        }
    }
    // An empty object does not open a level for members it does not have: one empty object
    // past the limit (`MAX_DEPTH + 1` objects in all) is accepted, two are not.
    let at = objects(MAX_DEPTH - 1, "{}");
    let past = objects(MAX_DEPTH, "{}");
    let over = objects(MAX_DEPTH + 1, "{}");
    assert!(json_ok(&at) && json_ok(&past) && json_too_deep(&over));
    accepted(&at);
    accepted(&past);
    refused(&over, ErrorCode::JwtInvalid);

    // Registered claims are read by their own visitors, with the same limit: within it the
    // JSON is fine and the type is what is wrong; past it the JSON is refused.
    for name in ["aud", "iss", "exp"] {
        let nest = |levels: usize| {
            let n = levels - 1;
            format!(r#"{{"{name}":{}"a"{}}}"#, "[".repeat(n), "]".repeat(n))
        };
        refused(&nest(MAX_DEPTH), ErrorCode::JwtClaimInvalid);
        refused(&nest(MAX_DEPTH + 1), ErrorCode::JwtInvalid);
        let nest_in_list = |levels: usize| {
            let n = levels - 2;
            format!(
                r#"{{"{name}":["a",{}"b"{}]}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        refused(&nest_in_list(MAX_DEPTH), ErrorCode::JwtClaimInvalid);
        refused(&nest_in_list(MAX_DEPTH + 1), ErrorCode::JwtInvalid);
        let objects_in = |levels: usize| {
            let n = levels - 1;
            format!(r#"{{"{name}":{}1{}}}"#, r#"{"a":"#.repeat(n), "}".repeat(n))
        };
        refused(&objects_in(MAX_DEPTH), ErrorCode::JwtClaimInvalid);
        refused(&objects_in(MAX_DEPTH + 1), ErrorCode::JwtInvalid);
    }
    // A string `aud` at the limit is a valid `aud`.
    let c = accepted(&format!(
        r#"{{"aud":["a"],"x":{}1{}}}"#,
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    ));
    assert_eq!(c.aud(), ["a"]);
}

/// `"a"` and `"\u0061"` are the same name also once an object has outgrown the inline list of
/// names and its duplicate check uses the tree.
#[test]
fn escaped_duplicates_in_large_objects() {
    let many: Vec<String> = (0..20).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let many = many.join(",");
    let objects = [
        // Both spellings after the switch to the tree.
        format!(r#"{{{many},"a":1,"\u0061":2}}"#),
        format!(r#"{{{many},"\u0061":1,"a":2}}"#),
        // The first among the inline names moved into the tree, the second after.
        format!(r#"{{"a":1,{many},"\u0061":2}}"#),
        format!(r#"{{"\u0061":1,{many},"a":2}}"#),
        // An escaped spelling of one of the generated names.
        format!(r#"{{{many},"\u006b7":0}}"#),
        // A registered claim spelt both ways.
        format!(r#"{{{many},"iss":"x","\u0069ss":"y"}}"#),
    ];
    for object in &objects {
        refused(object, ErrorCode::JwtInvalid);
        refused(&format!(r#"{{"x":{object}}}"#), ErrorCode::JwtInvalid);
        refused(&format!(r#"{{"x":[1,{object}]}}"#), ErrorCode::JwtInvalid);
        refused(
            &format!(r#"{{"aud":["a",{object}]}}"#),
            ErrorCode::JwtInvalid,
        );
        refused(
            &format!(r#"{{"{many_name}":{object}}}"#, many_name = "k0"),
            ErrorCode::JwtInvalid,
        );
    }
    // Distinct names, escaped or not, are fine.
    let fine = format!(r#"{{{many},"a":1,"\u0062":2,"c\u0061":3}}"#);
    let c = accepted(&fine);
    assert_eq!(c.get("b").unwrap(), Some(&json!(2)));
    assert_eq!(c.get("ca").unwrap(), Some(&json!(3)));
    accepted(&format!(r#"{{"x":{fine}}}"#));
}

/// The recorded string claims and the lazily built map read back what was validated, in
/// every combination of plain and escaped text, and clones do too.
#[test]
fn recorded_claims_read_back() {
    let c = accepted(
        r#"{"iss":"i\u0073s","sub":"sub","jti":"j\"ti","aud":["a","\u0062",""],"x":{"y":[1]}}"#,
    );
    let d = c.clone();
    for c in [&c, &d] {
        assert_eq!(c.iss(), Some("iss"));
        assert_eq!(c.sub(), Some("sub"));
        assert_eq!(c.jti(), Some("j\"ti"));
        assert_eq!(c.aud(), ["a", "b", ""]);
        assert_eq!(c.aud_iter().count(), 3);
        assert_eq!(c.get("x").unwrap(), Some(&json!({"y": [1]})));
        assert_eq!(c.get("sub").unwrap(), Some(&json!("sub")));
        assert!(c.get("cnf").unwrap().is_none());
        assert!(!c.contains("cnf").unwrap());
    }
}

/// Should the kept text ever not read back as verified (a bug: the two readers disagree),
/// every reader of the map gets an error, never "absent": an absent `cnf` would skip the
/// proof-of-possession check. What the verification pass recorded is still answered.
#[test]
fn a_map_that_does_not_read_back_is_an_error() {
    let good = Claims::parse(r#"{"sub":"s","cnf":{"jkt":"t"}}"#.into()).unwrap();
    let reg = good.reg().to_owned_static();
    // Only a test can pair registered claims with a text they were not read from.
    let c = Claims {
        text: ClaimsText::new(r#"{"sub":"s","cnf":{"jkt":"t"},"cnf":1}"#.into(), |_| reg),
        map: OnceLock::new(),
        aud_list: OnceLock::new(),
    };
    let errors = [
        c.get("cnf").unwrap_err(),
        c.get("x").unwrap_err(),
        c.contains("x").unwrap_err(),
        c.as_map().unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.code(), ErrorCode::JwtInvalid, "{e}");
        assert_eq!(
            e.reason(),
            r#"the JWT claims do not read back as verified: duplicate member name "cnf" at line 1 column 34"#
        );
    }
    assert!(c.map.get().is_none());
    assert_eq!(c.sub(), Some("s"));
    assert!(c.contains("cnf").unwrap());
    assert_eq!(c.get("client_id").unwrap(), None);
}

/// A string claim without escapes is read in place, in the kept text (no copy per claim);
/// one with escapes is decoded into its own string. Clones own all of theirs.
#[test]
fn plain_claims_borrow_the_text_and_escaped_ones_are_owned() {
    let c = accepted(
        r#"{"iss":"plain","sub":"e\u0073c","aud":"one","jti":"j","client_id":"c\"1","scope":"s t"}"#,
    );
    let d = c.clone();
    let text = c.text.borrow_owner().as_str();
    let inside = |s: &str| {
        let (start, at) = (text.as_ptr() as usize, s.as_ptr() as usize);
        at >= start && at + s.len() <= start + text.len()
    };
    for claims in [&c, &d] {
        assert_eq!(claims.iss(), Some("plain"));
        assert_eq!(claims.sub(), Some("esc"));
        assert_eq!(claims.aud(), ["one"]);
        assert_eq!(claims.jti(), Some("j"));
        assert_eq!(claims.client_id(), Some("c\"1"));
        assert_eq!(claims.scope(), Some("s t"));
    }
    let plain = [c.iss(), c.jti(), c.scope(), c.aud_iter().next()];
    assert!(plain.into_iter().all(|s| s.is_some_and(inside)));
    assert!(!inside(c.sub().unwrap()));
    assert!(!inside(c.client_id().unwrap()));
    let copied = [d.iss(), d.jti(), d.scope(), d.aud_iter().next()];
    assert!(copied.into_iter().all(|s| s.is_some_and(|s| !inside(s))));
    assert_eq!(d.text.borrow_owner(), text);
}

/// `get` and `contains` of a claim the verification pass does not record build the map, once.
#[test]
fn unregistered_claims_come_from_the_map() {
    let c = Claims::parse(r#"{"sub":"s","tenant":"t","roles":["r"],"n":null}"#.into()).unwrap();
    assert!(c.map.get().is_none());
    assert_eq!(c.get("tenant").unwrap(), Some(&json!("t")));
    assert!(c.map.get().is_some());
    assert_eq!(c.get("roles").unwrap(), Some(&json!(["r"])));
    assert_eq!(c.get("n").unwrap(), Some(&Value::Null));
    assert_eq!(c.get("absent").unwrap(), None);
    assert!(c.contains("n").unwrap());
    assert!(!c.contains("absent").unwrap());
    assert_eq!(c.as_map().unwrap().len(), 4);
}

/// `aud` is a list whether the token has a string or an array, escaped or not.
#[test]
fn aud_as_a_string_and_as_an_array() {
    for (text, want) in [
        (r#"{"aud":"a"}"#, &["a"][..]),
        (r#"{"aud":"\u0061"}"#, &["a"]),
        (r#"{"aud":["a","b\u0063"]}"#, &["a", "bc"]),
        (r#"{"aud":["a"]}"#, &["a"]),
        (r#"{"aud":[]}"#, &[]),
        ("{}", &[]),
    ] {
        let c = accepted(text);
        assert_eq!(c.aud(), want, "{text}");
        assert_eq!(c.aud_iter().collect::<Vec<_>>(), want, "{text}");
        assert_eq!(c.contains("aud").unwrap(), text.contains("aud"), "{text}");
    }
    let one = accepted(r#"{"aud":"a"}"#);
    assert_eq!(one.get("aud").unwrap(), Some(&json!("a")));
    let many = accepted(r#"{"aud":["a","b"]}"#);
    assert_eq!(many.get("aud").unwrap(), Some(&json!(["a", "b"])));
}

/// `client_id`, `scope` and `cnf` are read in the same pass, never type-checked: a string is
/// returned, any other value only makes the claim present.
#[test]
fn client_id_scope_and_cnf_without_the_map() {
    let c = accepted(r#"{"client_id":"c\u0031","scope":"read write","cnf":{"jkt":"t"}}"#);
    assert_eq!(c.client_id(), Some("c1"));
    assert_eq!(c.scope(), Some("read write"));
    let c = accepted(r#"{"client_id":7,"scope":["read"],"cnf":null}"#);
    assert_eq!((c.client_id(), c.scope()), (None, None));
    let c = Claims::parse(r#"{"client_id":{},"scope":1,"cnf":"x"}"#.into()).unwrap();
    assert!(
        c.contains("client_id").unwrap()
            && c.contains("scope").unwrap()
            && c.contains("cnf").unwrap()
    );
    // Answered without building the map, as is `get` of any of them that is absent.
    assert!(c.map.get().is_none());
    let s = Claims::parse(r#"{"sub":"s","x":1}"#.into()).unwrap();
    assert!(
        s.get("cnf").unwrap().is_none()
            && s.get("client_id").unwrap().is_none()
            && s.get("iss").unwrap().is_none()
    );
    assert!(s.map.get().is_none());
    assert_eq!(s.get("x").unwrap(), Some(&json!(1)));
    let c = accepted(r#"{"sub":"s"}"#);
    assert!(
        !c.contains("client_id").unwrap()
            && !c.contains("scope").unwrap()
            && !c.contains("cnf").unwrap()
    );
    // Duplicates and depth are still refused for them, as for any member.
    for bad in [
        r#"{"scope":"a","scope":"b"}"#,
        r#"{"client_id":"a","client_\u0069d":"b"}"#,
        r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
    ] {
        refused(bad, ErrorCode::JwtInvalid);
        let e = Claims::parse(bad.to_owned()).unwrap_err();
        assert!(e.reason().contains("duplicate member name"), "{bad}: {e}");
    }
}
