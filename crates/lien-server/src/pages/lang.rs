//! The language of a borrower page: English, Swahili or Hindi.
//!
//! Chosen, first to last, by the page's `?lang=` (the switch every page shows), by the cookie
//! that switch sets, and by the browser's `Accept-Language`; English when none of them names a
//! language the pages have. Nothing a client sends here can fail a request: an unknown code, a
//! malformed or oversized header is simply not a choice.
//!
//! `Accept-Language` is read by hand, strictly and within bounds, rather than with a crate: the
//! small one there is (`accept-language`) sorts by an `f32` quality that `q=NaN` makes
//! unordered (a panic in a current standard library's sort), accepts any quality and any
//! number of entries. Here a header longer than [`MAX_HEADER_BYTES`] or with more than
//! [`MAX_ENTRIES`] entries is ignored whole, and a quality must be RFC 9110's `qvalue`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

/// A language the borrower pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English, the fallback.
    En,
    /// Swahili (Kiswahili).
    Sw,
    /// Hindi, in Devanagari.
    Hi,
}

/// An `Accept-Language` longer than this is ignored: browsers send a few dozen bytes.
pub const MAX_HEADER_BYTES: usize = 256;
/// An `Accept-Language` with more entries than this is ignored.
pub const MAX_ENTRIES: usize = 16;
/// The cookie the language switch sets.
pub const COOKIE: &str = "lien_lang";

impl Lang {
    /// Every language, in the order the switch lists them.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Sw, Lang::Hi];

    /// The BCP 47 code, as in `<html lang>`, `?lang=` and the cookie.
    pub const fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sw => "sw",
            Lang::Hi => "hi",
        }
    }

    /// The language's name in itself, as the switch shows it (a reader looks for their own
    /// language by its own name).
    pub const fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Sw => "Kiswahili",
            Lang::Hi => "हिन्दी",
        }
    }

    /// The language with this code (exactly, as `?lang=` and the cookie carry it).
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language of a language tag's primary subtag (`sw-KE` is Swahili), any case.
    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or_default();
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }
}

/// The best language of ours in an `Accept-Language` value: the first, by quality then by
/// order, that we have. `None` for a header that names none of ours, that is malformed, or
/// that is too long; the caller then falls back to English.
pub fn negotiate(header: &str) -> Option<Lang> {
    if header.len() > MAX_HEADER_BYTES {
        return None;
    }
    let mut best: Option<(u16, Lang)> = None;
    for (i, entry) in header.split(',').enumerate() {
        if i >= MAX_ENTRIES {
            return None;
        }
        let entry = entry.trim();
        if entry.is_empty() {
            // RFC 9110 lists allow empty elements ("en, , sw").
            continue;
        }
        let (tag, quality) = parse_entry(entry)?;
        // `*` and a quality of 0 ("not this one") choose nothing.
        let Some(lang) = Lang::from_tag(tag).filter(|_| tag != "*") else {
            continue;
        };
        if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// One entry, `tag` or `tag;q=0.5`: the tag and the quality in thousandths. `None` when the
/// entry is malformed (then the whole header is not trusted).
fn parse_entry(entry: &str) -> Option<(&str, u16)> {
    let mut parts = entry.split(';');
    let tag = parts.next()?.trim();
    let tag_ok = tag == "*"
        || (!tag.is_empty()
            && tag.len() <= 35
            && tag.split('-').all(|sub| {
                (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
            }));
    if !tag_ok {
        return None;
    }
    let quality = match (parts.next(), parts.next()) {
        (None, _) => 1000,
        (Some(param), None) => parse_qvalue(param.trim().strip_prefix("q=")?)?,
        (Some(_), Some(_)) => return None,
    };
    Some((tag, quality))
}

/// RFC 9110's `qvalue`: `0`, `0.` and up to three digits, `1`, `1.` and up to three zeros; in
/// thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The page's language and whether the reader chose it with the switch (`?lang=`), in which
/// case the answer remembers it in a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLang {
    /// The language to write the page in.
    pub lang: Lang,
    /// Chosen with `?lang=` on this request.
    pub switched: bool,
}

impl PageLang {
    /// The language a request asks for.
    pub fn of(query: Option<&str>, headers: &HeaderMap) -> PageLang {
        let asked = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.strip_prefix("lang="))
            .find_map(Lang::from_code);
        if let Some(lang) = asked {
            return PageLang {
                lang,
                switched: true,
            };
        }
        let remembered = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE)
            .and_then(|c| Lang::from_code(c.value()));
        let negotiated = || {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(negotiate)
        };
        PageLang {
            lang: remembered.or_else(negotiated).unwrap_or(Lang::En),
            switched: false,
        }
    }

    /// The `Set-Cookie` that remembers a switched language for a year (not `Secure`: the
    /// choice of language is no secret, and the pages are also served over plain HTTP on a
    /// shop's own network).
    pub fn cookie(self) -> Option<HeaderValue> {
        if !self.switched {
            return None;
        }
        let cookie = cookie::Cookie::build((COOKIE, self.lang.code()))
            .path("/")
            .max_age(cookie::time::Duration::days(365))
            .same_site(cookie::SameSite::Lax)
            .http_only(true)
            .build();
        HeaderValue::from_str(&cookie.to_string()).ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<PageLang, Self::Rejection> {
        Ok(PageLang::of(parts.uri.query(), &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_language_we_have_wins_by_quality_then_by_order() {
        assert_eq!(negotiate("sw"), Some(Lang::Sw));
        assert_eq!(negotiate("sw-KE,en;q=0.8"), Some(Lang::Sw));
        assert_eq!(negotiate("fr, hi;q=0.9, en;q=0.5"), Some(Lang::Hi));
        assert_eq!(negotiate("en;q=0.4, SW;q=0.7"), Some(Lang::Sw));
        assert_eq!(
            negotiate("hi-IN, sw"),
            Some(Lang::Hi),
            "equal quality: order"
        );
        assert_eq!(negotiate("de-DE, fr"), None);
        assert_eq!(negotiate("sw;q=0, en;q=0.1"), Some(Lang::En), "q=0 refuses");
        assert_eq!(negotiate("*"), None);
        assert_eq!(negotiate("en, , sw;q=0.5"), Some(Lang::En));
    }

    #[test]
    fn a_malformed_or_oversized_header_chooses_nothing() {
        for bad in [
            "sw;q=NaN",
            "sw;q=1.5",
            "sw;q=2",
            "sw;q=0.1234",
            "sw;q=-0",
            "sw;level=1",
            "sw;q=0.5;q=0.6",
            "sw_KE",
            "s\u{e9}",
            "averyveryverylongsubtag",
        ] {
            assert_eq!(negotiate(bad), None, "{bad}");
        }
        assert_eq!(negotiate(&"sw,".repeat(17)), None, "too many entries");
        assert_eq!(negotiate(&format!("sw;q=0.5,{}", " ".repeat(300))), None);
    }

    #[test]
    fn the_switch_beats_the_cookie_which_beats_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("hi"));
        assert_eq!(PageLang::of(None, &headers).lang, Lang::Hi);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; lien_lang=sw"),
        );
        assert_eq!(PageLang::of(None, &headers).lang, Lang::Sw);
        let switched = PageLang::of(Some("q=1&lang=en"), &headers);
        assert_eq!(
            switched,
            PageLang {
                lang: Lang::En,
                switched: true
            }
        );
        let cookie = switched.cookie().unwrap();
        assert!(
            cookie.to_str().unwrap().starts_with("lien_lang=en"),
            "{cookie:?}"
        );
        assert_eq!(
            PageLang::of(Some("lang=fr"), &HeaderMap::new()).lang,
            Lang::En
        );
    }
}
