//! Typed setting values, deserialized by serde from any source the `config` crate merges.
//!
//! The environment gives every value as text (`PORT=8000`, `AZURE_REQUIRED_SCOPES=a,b`); a TOML
//! file gives native values (`port = 8000`, `azure_required_scopes = ["a", "b"]`). Each type here
//! accepts both, so one field serves both sources. A value that does not fit fails with the
//! message `must be <expectation>, got <value>`; `config.rs` prefixes it with the setting's name.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use url::Url;

use crate::cli::LogFormat;

/// A value as the source wrote it: text (quoted in messages) or a bare TOML scalar.
enum Written {
    Text(String),
    Bare(String),
}

impl Written {
    fn text(&self) -> &str {
        match self {
            Written::Text(t) | Written::Bare(t) => t.trim(),
        }
    }
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Text(t) => write!(f, "{t:?}"),
            Written::Bare(t) => f.write_str(t),
        }
    }
}

/// The error text every value type uses; `config.rs` relies on its `must be ` prefix.
fn mismatch<E: de::Error>(expected: &str, got: impl fmt::Display) -> E {
    E::custom(format_args!("must be {expected}, got {got}"))
}

/// Reads one scalar (text, number or boolean) and parses its text with `parse`.
struct ScalarVisitor<T, F> {
    expected: &'static str,
    parse: F,
    out: PhantomData<T>,
}

impl<T, F: Fn(&str) -> Option<T>> ScalarVisitor<T, F> {
    fn finish<E: de::Error>(self, written: Written) -> Result<T, E> {
        (self.parse)(written.text()).ok_or_else(|| mismatch(self.expected, written))
    }
}

impl<'de, T, F: Fn(&str) -> Option<T>> Visitor<'de> for ScalarVisitor<T, F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.finish(Written::Text(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        self.finish(Written::Bare(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.finish(Written::Bare(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.finish(Written::Bare(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.finish(Written::Bare(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(mismatch(self.expected, "a list"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        Err(mismatch(self.expected, "a table"))
    }
}

fn scalar<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(ScalarVisitor {
        expected,
        parse,
        out: PhantomData,
    })
}

/// Declares a newtype whose value is parsed from one scalar.
macro_rules! scalar_value {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expected:literal, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $name(pub(crate) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                scalar(deserializer, $expected, $parse).map($name)
            }
        }
    };
}

scalar_value!(
    /// A TCP port (`PORT`).
    Port(u16),
    "a port number from 0 to 65535",
    |s| s.parse().ok()
);
scalar_value!(
    /// A count or a size in bytes.
    Count(usize),
    "a whole number",
    |s| s.parse().ok()
);
/// The longest duration a `*_SECS` setting may hold: one year. Durations become deadlines
/// (`Instant + duration`), which overflow past a few hundred billion years; nothing here needs
/// more than a year.
pub(crate) const MAX_SECS: u64 = 365 * 24 * 3600;

scalar_value!(
    /// A duration written as whole seconds (settings named `*_SECS`), at most a year.
    Secs(Duration),
    "a whole number of seconds up to 31536000 (a year)",
    |s| s.parse::<u64>().ok().filter(|n| *n <= MAX_SECS).map(Duration::from_secs)
);
scalar_value!(
    /// A boolean: `true`/`false` in TOML; also `1`/`0`, `yes`/`no`, `on`/`off` (any case) as text.
    Flag(bool),
    "true or false (yes/no, on/off and 1/0 work too)",
    |s| match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
);
scalar_value!(
    /// An IP address to listen on; `localhost` means 127.0.0.1, and `[::1]` is accepted.
    Host(IpAddr),
    "an IP address such as 127.0.0.1 or 0.0.0.0",
    |s| match s {
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        _ => s.trim_start_matches('[').trim_end_matches(']').parse().ok(),
    }
);
scalar_value!(
    /// An absolute URL.
    AbsoluteUrl(Url),
    "an absolute URL such as https://mcp.contoso.com",
    |s| Url::parse(s).ok()
);
scalar_value!(
    /// `human` or `json`.
    Format(LogFormat),
    "human or json",
    |s| match s {
        "human" => Some(LogFormat::Human),
        "json" => Some(LogFormat::Json),
        _ => None,
    }
);
scalar_value!(
    /// A rate limit: `N/s`, `N/min`, `N/h`; `off` or `0` for none.
    RateValue(Option<transports::http::Rate>),
    "a rate such as 100/s, 600/min or 50/h, or off",
    |s| transports::http::Rate::parse_setting(s).ok()
);
scalar_value!(
    /// Which forwarded-for header trusted proxies write.
    ProxyHeader(transports::http::ForwardedHeader),
    "x-forwarded-for or forwarded",
    |s| s.parse().ok()
);
scalar_value!(
    /// `GROUPS_GRAPH_AUTH`: `app` or `on_behalf_of`.
    GroupsGraphAuth(verifiers::GraphAuth),
    "app or on_behalf_of",
    |s| match s.to_ascii_lowercase().as_str() {
        "app" => Some(verifiers::GraphAuth::App),
        "on_behalf_of" | "on-behalf-of" | "obo" => Some(verifiers::GraphAuth::OnBehalfOf),
        _ => None,
    }
);
scalar_value!(
    /// Text, trimmed (numbers and booleans are taken as written).
    Text(String),
    "text",
    |s| Some(s.to_owned())
);

/// A list of names: a TOML array (`["a", "b"]`) or one comma-separated string (`"a, b"`, as the
/// environment gives it). Items are trimmed; empty items are dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct List(pub(crate) Vec<String>);

const LIST: &str = "a list such as [\"a\", \"b\"] or a comma-separated string";

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(LIST)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<List, E> {
                Ok(List(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut items = Vec::new();
                while let Some(Text(item)) = seq.next_element()? {
                    if !item.is_empty() {
                        items.push(item);
                    }
                }
                Ok(List(items))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<List, E> {
                Err(mismatch(LIST, v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<List, E> {
                Err(mismatch(LIST, v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<List, E> {
                Err(mismatch(LIST, v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<List, E> {
                Err(mismatch(LIST, v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<List, A::Error> {
                Err(mismatch(LIST, "a table"))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// `deserialize_with` for an optional [`List`] exposed as `Option<Vec<String>>`.
pub(crate) fn optional_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    List::deserialize(deserializer).map(|l| Some(l.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, StrDeserializer, U64Deserializer};
    use serde::de::IntoDeserializer;

    fn text<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, String> {
        let d: StrDeserializer<'_, Error> = s.into_deserializer();
        T::deserialize(d).map_err(|e| e.to_string())
    }

    fn number<T: for<'de> Deserialize<'de>>(n: u64) -> Result<T, String> {
        let d: U64Deserializer<Error> = n.into_deserializer();
        T::deserialize(d).map_err(|e| e.to_string())
    }

    #[test]
    fn text_and_native_values_parse_alike() {
        assert_eq!(text::<Port>(" 8013 ").unwrap(), Port(8013));
        assert_eq!(number::<Port>(8013).unwrap(), Port(8013));
        assert_eq!(text::<Secs>("90").unwrap(), Secs(Duration::from_secs(90)));
        assert_eq!(text::<Flag>("Yes").unwrap(), Flag(true));
        assert_eq!(text::<Host>("[::1]").unwrap().0.to_string(), "::1");
        assert_eq!(
            text::<List>(" a, ,b ").unwrap(),
            List(vec!["a".into(), "b".into()])
        );
        assert_eq!(text::<Text>(" x ").unwrap(), Text("x".into()));
    }

    #[test]
    fn a_mismatch_says_what_was_expected_and_what_came() {
        assert_eq!(
            number::<Port>(70000).unwrap_err(),
            "must be a port number from 0 to 65535, got 70000"
        );
        assert_eq!(
            text::<Secs>("5m").unwrap_err(),
            "must be a whole number of seconds up to 31536000 (a year), got \"5m\""
        );
        assert_eq!(
            text::<Secs>("31536000").unwrap(),
            Secs(Duration::from_secs(MAX_SECS))
        );
        assert!(text::<Secs>("31536001").is_err());
        assert_eq!(
            number::<List>(3).unwrap_err(),
            "must be a list such as [\"a\", \"b\"] or a comma-separated string, got 3"
        );
    }
}
