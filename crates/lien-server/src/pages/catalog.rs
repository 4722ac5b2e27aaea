//! The pages' words: one Fluent catalogue per language (`locales/<lang>/pages.ftl`), embedded
//! when the server is compiled and parsed once, on first use.
//!
//! Every catalogue has every message: the tests below check that each language has the same
//! message ids with the same variables, and that every id the pages' code names exists. The
//! code names ids only as string literals of the shape `word-word` (every id has a hyphen),
//! which is how the test finds them; other literals of the pages keep out of that shape
//! (element ids use underscores). Should a message still be missing at run time, the
//! English one is shown rather than nothing.
//!
//! Values given to a message are plain text: the catalogue's output is spliced into the maud
//! templates, which escape it like any other value. Fluent's bidirectional isolation marks are
//! off: all three languages are written left to right, and the marks would show as stray
//! characters in some browsers and in copied text.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

use super::lang::Lang;

/// The catalogues' text, by language.
fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::En => include_str!("../../locales/en/pages.ftl"),
        Lang::Sw => include_str!("../../locales/sw/pages.ftl"),
        Lang::Hi => include_str!("../../locales/hi/pages.ftl"),
    }
}

type Bundle = FluentBundle<FluentResource>;

static BUNDLES: LazyLock<Vec<(Lang, Bundle)>> = LazyLock::new(|| {
    Lang::ALL
        .into_iter()
        .map(|lang| (lang, bundle(lang)))
        .collect()
});

fn bundle(lang: Lang) -> Bundle {
    // The catalogues are ours and tested: an error here is a build that must not ship.
    let resource = FluentResource::try_new(source(lang).to_string())
        .unwrap_or_else(|(_, errors)| panic!("locales/{}/pages.ftl: {errors:?}", lang.code()));
    let id = lang
        .code()
        .parse()
        .expect("a language code is a language identifier");
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .unwrap_or_else(|errors| panic!("locales/{}/pages.ftl: {errors:?}", lang.code()));
    bundle
}

fn bundle_of(lang: Lang) -> &'static Bundle {
    &BUNDLES
        .iter()
        .find(|(l, _)| *l == lang)
        .expect("every language has a catalogue")
        .1
}

/// The message `id` in `lang`, with `args` (name and text) filled in.
pub fn message(lang: Lang, id: &str, args: &[(&str, &str)]) -> String {
    [lang, Lang::En]
        .into_iter()
        .find_map(|lang| format(bundle_of(lang), id, args))
        .unwrap_or_else(|| {
            tracing::error!(id, "a page's message is missing from every catalogue");
            id.to_string()
        })
}

fn format(bundle: &Bundle, id: &str, args: &[(&str, &str)]) -> Option<String> {
    let pattern = bundle.get_message(id)?.value()?;
    let mut fluent_args = FluentArgs::new();
    for (name, value) in args {
        fluent_args.set(*name, *value);
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
    if !errors.is_empty() {
        tracing::error!(id, ?errors, "a page's message did not format");
    }
    Some(text.into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Each message of a catalogue and the variables it uses, read from its lines (every
    /// message is one line: `id = text`).
    fn messages(lang: Lang) -> BTreeMap<String, BTreeSet<String>> {
        source(lang)
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (id, text) = line
                    .split_once(" = ")
                    .unwrap_or_else(|| panic!("{}: not `id = text`: {line}", lang.code()));
                let vars = text
                    .split("{ $")
                    .skip(1)
                    .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
                    .collect();
                (id.to_string(), vars)
            })
            .collect()
    }

    /// The message ids the pages' code names: every string literal of the shape `word-word`
    /// in their sources.
    fn ids_in_code() -> BTreeSet<String> {
        let sources = [
            include_str!("../pages.rs"),
            include_str!("lang.rs"),
            include_str!("time.rs"),
            include_str!("locks.rs"),
        ];
        let is_id = |s: &str| {
            s.contains('-')
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && !s.ends_with('-')
                && !s.contains("--")
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        sources
            .iter()
            .flat_map(|src| src.split('"').skip(1).step_by(2))
            .filter(|s| is_id(s))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_language_has_every_message_with_the_same_variables() {
        let english = messages(Lang::En);
        assert!(english.len() > 100, "{}", english.len());
        for lang in Lang::ALL {
            let other = messages(lang);
            let ids = |m: &BTreeMap<String, BTreeSet<String>>| m.keys().cloned().collect();
            let (en_ids, ids_here): (BTreeSet<String>, BTreeSet<String>) =
                (ids(&english), ids(&other));
            assert_eq!(
                en_ids.difference(&ids_here).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "missing from {}",
                lang.code()
            );
            assert_eq!(
                ids_here.difference(&en_ids).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "only in {}",
                lang.code()
            );
            for (id, vars) in &english {
                assert_eq!(&other[id], vars, "{id} in {}", lang.code());
            }
        }
    }

    #[test]
    fn every_id_the_code_names_exists() {
        let english = messages(Lang::En);
        let used = ids_in_code();
        // The test must see the ids, or it proves nothing.
        for known in ["why-title", "locks-frp-heading", "month-12", "state-locked"] {
            assert!(used.contains(known), "{known} not found in the code");
        }
        let missing: Vec<_> = used
            .iter()
            .filter(|id| !english.contains_key(*id))
            .collect();
        assert!(missing.is_empty(), "not in the catalogues: {missing:?}");
    }

    #[test]
    fn messages_format_in_each_language_and_fall_back_to_the_id_at_worst() {
        assert_eq!(message(Lang::En, "nav-home", &[]), "Home");
        assert_eq!(message(Lang::Sw, "nav-home", &[]), "Mwanzo");
        assert_eq!(message(Lang::Hi, "month-2", &[]), "फ़रवरी");
        assert_eq!(
            message(Lang::Sw, "error-rate-limited", &[("seconds", "7")]),
            "Maombi mengi mno kutoka kwenye muunganisho wako. Jaribu tena baada ya sekunde 7."
        );
        assert_eq!(message(Lang::Hi, "no-such-message", &[]), "no-such-message");
    }
}
