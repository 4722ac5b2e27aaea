//! The borrower pages in the reader's language: chosen from `Accept-Language`, switched with
//! `?lang=` and remembered in a cookie; times in the borrower's zone; the amount as the lock
//! screen writes it; "Which lock is this?" in every language.

use crate::common::{Backend, World, postgres_url};
use lien_agent::Screen;

/// A page as a browser would get it: status, the `Set-Cookie` it answers with, and the HTML.
struct Seen {
    status: u16,
    set_cookie: Option<String>,
    /// `Vary` and `Cache-Control`, which keep a shared cache from handing the page to another.
    caching: (String, String),
    html: String,
}

impl Seen {
    /// The `lang` of the page's `<html>`.
    fn html_lang(&self) -> &str {
        let rest = self
            .html
            .split("<html lang=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("no <html lang>: {}", self.html));
        rest.split('"').next().unwrap()
    }

    fn shows(&self, text: &str) -> &Seen {
        assert!(
            self.html.contains(text),
            "the page does not show {text:?}:\n{}",
            self.html
        );
        self
    }
}

async fn open(world: &World, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut request = world.app.client.get(format!("{}{path}", world.app.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map_or(String::new(), |v| v.to_str().unwrap().to_string())
    };
    let caching = (header("vary"), header("cache-control"));
    let html = response.text().await.unwrap();
    Seen {
        status,
        set_cookie,
        caching,
        html,
    }
}

/// A world whose phone is locked on 5 February 2026 at 10:00 in Nairobi (the February
/// installment of KES 1,000.00 unpaid), with the public limit off for the many look-ups here;
/// the status code and the amount its lock screen shows.
async fn locked_world(backend: Backend) -> (World, String, String) {
    let mut world = World::new_with(backend, |s| {
        s.public_rate_per_minute = 0;
        s.support_contact = "+254 20 765 4321".into();
    })
    .await;
    world.advance_to("2026-02-05T10:00:00+03:00").await;
    let Screen::Locked(lock) = world.phone.screen() else {
        panic!("not locked: {}", world.phone.render());
    };
    let code = lock.details.status_code.clone();
    let amount = world
        .phone
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("Amount due: ").map(str::to_string))
        .expect("the lock screen shows the amount due");
    (world, code, amount)
}

async fn the_status_page_speaks_the_browsers_language(backend: Backend) {
    let (world, code, amount) = locked_world(backend).await;
    assert_eq!(amount, "KES 1,000.00", "the lock screen groups thousands");
    let why = format!("/why?q={code}");

    let sw = open(
        &world,
        &why,
        &[("accept-language", "sw-KE,sw;q=0.9,en;q=0.5")],
    )
    .await;
    assert_eq!(sw.status, 200);
    assert_eq!(sw.html_lang(), "sw");
    sw.shows("Imefungwa. Simu za dharura bado zinapigika.")
        .shows("Simu hii imefungwa kwa sababu malipo ya awamu yamechelewa (yalitakiwa tarehe 1 Februari 2026).")
        // The amount exactly as the lock screen writes it, and the time in Nairobi.
        .shows(&format!("<strong id=\"amount\">{amount}</strong>"))
        .shows("Hali ilivyo tarehe 5 Februari 2026, saa 10:00 EAT.")
        .shows("+254 20 765 4321");
    assert!(!sw.html.contains("KES 1000.00"), "{}", sw.html);
    assert!(!sw.html.contains("T07:00:00Z"), "no raw UTC: {}", sw.html);
    assert!(
        sw.set_cookie.is_none(),
        "nothing to remember without the switch"
    );

    let hi = open(&world, &why, &[("accept-language", "hi-IN, hi;q=0.9")]).await;
    assert_eq!(hi.html_lang(), "hi");
    hi.shows("लॉक है। आपातकालीन कॉल अब भी हो सकते हैं।")
        .shows("5 फ़रवरी 2026, 10:00 EAT की स्थिति।")
        .shows(&amount);

    let en = open(&world, &why, &[("accept-language", "fr-FR, de;q=0.8")]).await;
    assert_eq!(en.html_lang(), "en", "nothing we have: English");
    en.shows("Locked. Emergency calls still work.")
        .shows("This phone is locked because an installment payment is overdue (it was due on 1 February 2026).")
        .shows("Status on 5 February 2026, 10:00 EAT.");

    // Whatever the header says, the page is served, in English.
    let huge = "sw;q=0.9,".repeat(500);
    for bad in ["sw;q=NaN", "sw;q=7", "sw;;;", "sw-, hi_IN", huge.as_str()] {
        let seen = open(&world, &why, &[("accept-language", bad)]).await;
        assert_eq!(seen.status, 200, "{bad:?}: {}", seen.html);
        assert_eq!(seen.html_lang(), "en", "{bad:?}");
        seen.shows(&amount);
    }
    world.app.running.stop().await;
}

async fn the_switch_chooses_and_a_cookie_remembers(backend: Backend) {
    let (world, code, _) = locked_world(backend).await;
    let why = format!("/why?q={code}");
    let browser_sw = [("accept-language", "sw")];

    // Each page links to itself in the other languages, keeping what was looked up.
    let sw = open(&world, &why, &browser_sw).await;
    // The page depends on the reader's language and holds their look-up: no shared cache
    // may keep it.
    assert_eq!(
        sw.caching,
        (
            "Cookie, Accept-Language".to_string(),
            "private, no-store".to_string()
        )
    );
    sw.shows(&format!("href=\"/why?q={code}&amp;lang=hi\""))
        .shows(&format!("href=\"/why?q={code}&amp;lang=en\""))
        .shows("<strong lang=\"sw\">Kiswahili</strong>");

    // The reader picks Hindi over their browser's Swahili; the choice is remembered.
    let hi = open(&world, &format!("{why}&lang=hi"), &browser_sw).await;
    assert_eq!(hi.html_lang(), "hi");
    let cookie = hi.set_cookie.clone().expect("the switch sets a cookie");
    assert!(cookie.starts_with("lien_lang=hi;"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    // Links and forms keep the language.
    hi.shows("href=\"/check?lang=hi\"")
        .shows("<input type=\"hidden\" name=\"lang\" value=\"hi\">");

    let remembered = open(
        &world,
        "/check",
        &[("accept-language", "sw"), ("cookie", "lien_lang=hi")],
    )
    .await;
    assert_eq!(remembered.html_lang(), "hi");
    remembered.shows("क्या यह फ़ोन किस्तों पर है?");

    // An unknown language in the switch or the cookie chooses nothing.
    let unknown = open(&world, "/?lang=xx", &[("cookie", "lien_lang=<script>")]).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.html_lang(), "en");
    assert!(unknown.set_cookie.is_none());
    world.app.running.stop().await;
}

async fn which_lock_is_this_in_three_languages(backend: Backend) {
    let (world, _, _) = locked_world(backend).await;
    for (lang, title, frp, carrier) in [
        (
            "en",
            "Which lock is this?",
            "Google factory reset protection (FRP)",
            "Carrier lock (SIM or network lock)",
        ),
        (
            "sw",
            "Ni kufuli gani?",
            "Ulinzi wa Google baada ya kurejesha mipangilio ya kiwandani (FRP)",
            "Kufuli ya mtandao (SIM)",
        ),
        (
            "hi",
            "यह कौन-सा लॉक है?",
            "Google की फ़ैक्टरी रीसेट सुरक्षा (FRP)",
            "नेटवर्क लॉक (सिम लॉक)",
        ),
    ] {
        let seen = open(&world, &format!("/locks?lang={lang}"), &[]).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.html_lang(), lang);
        seen.shows(&format!("<h1>{title}</h1>"))
            .shows(frp)
            .shows(carrier)
            .shows("id=\"locks-account\"")
            .shows("id=\"locks-bootloader\"")
            .shows(&format!("href=\"/check?lang={lang}\""));
    }
    // The IMEI check and the status page lead to it.
    let check = open(&world, &format!("/check?imei={}&lang=sw", world.imei), &[]).await;
    check
        .shows("data-status=\"locked\"")
        .shows("Simu hii iko kwenye mkopo, na kwa sasa Duka Phones ameizuia au kuifunga.")
        .shows("href=\"/locks?lang=sw\"");
    let why = open(&world, &format!("/why?q={}", world.imei), &[]).await;
    why.shows("href=\"/locks?lang=en\"");
    world.app.running.stop().await;
}

/// POSTs the hardship form, `fields` already encoded as `application/x-www-form-urlencoded`.
async fn ask_pause(world: &World, lang: &str, fields: &str) -> Seen {
    let response = world
        .app
        .client
        .post(format!("{}/hardship?lang={lang}", world.app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(fields.to_string())
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    Seen {
        status,
        set_cookie: None,
        caching: (String::new(), String::new()),
        html: response.text().await.unwrap(),
    }
}

async fn a_locked_borrower_asks_for_a_pause_from_the_page_in_swahili(backend: Backend) {
    let (mut world, code, _) = locked_world(backend).await;
    // The status page leads to the form, with the code filled in.
    let why = open(&world, &format!("/why?q={code}&lang=sw"), &[]).await;
    why.shows(&format!("href=\"/hardship?q={code}&amp;lang=sw\""));
    let form = open(&world, &format!("/hardship?q={code}&lang=sw"), &[]).await;
    assert_eq!(form.status, 200);
    form.shows("<h1>Omba kusitishwa kwa malipo</h1>")
        .shows(&format!("value=\"{code}\""));

    // A wrong code: the one answer any failed proof gets, and what was typed stays.
    let imei = world.imei.clone();
    let wrong = ask_pause(
        &world,
        "sw",
        &format!("imei={imei}&status_code=00000000&days=5&reason=nimeugua"),
    )
    .await;
    assert_eq!(wrong.status, 404, "{}", wrong.html);
    wrong.shows("value=\"00000000\"").shows("nimeugua");
    // Days that are not a number are refused naming the field.
    let bad = ask_pause(
        &world,
        "sw",
        &format!("imei={imei}&status_code={code}&days=wiki&reason=nimeugua"),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.html);
    bad.shows("days");

    // Five days is within the Kenya preset's seven granted at once.
    let granted = ask_pause(
        &world,
        "sw",
        &format!("imei={imei}&status_code={code}&days=5&reason=nimeugua+hospitalini"),
    )
    .await;
    assert_eq!(granted.status, 201, "{}", granted.html);
    granted.shows("Malipo yako yamesitishwa hadi 10 Februari 2026");

    // The phone shows the pause at its next check-in, unlocked.
    world
        .advance(std::time::Duration::from_secs(7 * 3600))
        .await;
    assert!(
        !crate::common::locked(&world.phone),
        "{}",
        world.phone.render()
    );
    world.app.running.stop().await;
}

on_both_backends!(
    a_locked_borrower_asks_for_a_pause_from_the_page_in_swahili,
    the_status_page_speaks_the_browsers_language,
    the_switch_chooses_and_a_cookie_remembers,
    which_lock_is_this_in_three_languages,
);
