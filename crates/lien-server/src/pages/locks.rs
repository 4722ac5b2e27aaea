//! "Which lock is this?": how to tell a financing lock from the other locks a phone can have,
//! what each looks like and who can lift it. A buyer whose phone the IMEI check calls clear, or
//! a borrower facing a screen they do not recognise, learns here whom to ask; nobody should pay
//! a financier to lift a lock the financier cannot lift.

use maud::{Markup, html};

use super::catalog::message;
use super::lang::Lang;

/// Each lock: its heading, what it looks like, who lifts it. The financing lock first.
const LOCKS: [(&str, &str, &str); 5] = [
    ("locks-lien-heading", "locks-lien-looks", "locks-lien-who"),
    ("locks-frp-heading", "locks-frp-looks", "locks-frp-who"),
    (
        "locks-carrier-heading",
        "locks-carrier-looks",
        "locks-carrier-who",
    ),
    (
        "locks-account-heading",
        "locks-account-looks",
        "locks-account-who",
    ),
    (
        "locks-bootloader-heading",
        "locks-bootloader-looks",
        "locks-bootloader-who",
    ),
];

/// The page's body; `check_link` leads to the IMEI check in the reader's language.
pub fn body(lang: Lang, check_link: &str) -> Markup {
    let t = |id: &str| message(lang, id, &[]);
    html! {
        p { (t("locks-intro")) }
        @for (heading, looks, who) in LOCKS {
            section class="box" id=(heading.trim_end_matches("-heading")) {
                h2 { (t(heading)) }
                p { strong { (t("locks-looks")) } " " (t(looks)) }
                p { strong { (t("locks-who")) } " " (t(who)) }
            }
        }
        p { a href=(check_link) { (t("check-title")) } " " (t("locks-check-imei")) }
    }
}
