//! `lien phone`: one simulated phone against a server, driven from the terminal.
//!
//! The phone is the real agent (`lien-agent`) with an HTTP transport, the machine's clocks
//! (which `clock` and `advance` offset) and a platform that prints what it would show. Commands
//! come one per line on standard input, so a demo can be typed and a test can be piped.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lien_agent::sim::{HttpTransport, Phone, PushBackoff, SimClock, SimHardware, factory_identity};
use lien_agent::{
    AgentConfig, CodeOutcome, EmergencyOutcome, FileStorage, Identity, MemoryStorage, Mode, Storage,
};
use lien_proto::attestation::DevelopmentRoot;

/// Flags of `lien phone`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// The phone's first IMEI.
    #[arg(long)]
    imei: String,
    /// The phone's second IMEI, for a dual-SIM phone.
    #[arg(long)]
    imei2: Option<String>,
    /// The serial number (must match the enrollment).
    #[arg(long)]
    serial: String,
    /// The model name.
    #[arg(long, default_value = "Lien simulated phone")]
    model: String,
    /// Keep the phone's storage (protected/ and data/) and its simulated secure hardware
    /// (hardware/: the storage key and the rollback slot) here, so they survive restarts of
    /// the simulator; by default they live in memory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The development attestation root the simulated phone's factory identity is minted
    /// from: the one `lien serve` created in its data directory.
    #[arg(long, default_value = "lien-data/dev-attestation-root.pem")]
    attestation_root: PathBuf,
    /// How long an offline unlock code unlocks, in hours.
    #[arg(long, default_value_t = 48)]
    offline_unlock_hours: u64,
}

const HELP: &str = "\
Commands:
  help               this list
  check              tap \"Check again\": check in with the server now
  code NNNNNNNN      enter an offline unlock code
  emergency          tap \"Emergency use\" on the lock screen: the policy's window of use,
                     taken without the network, once per period
  reset              factory reset (keeps the protected state)
  reflash            full reflash (loses the protected state too; the secure hardware
                     keeps the last verified status until the server answers)
  reboot             restart the phone
  offline | online   take the phone off the network, or back
  clock +/-DURATION  move the phone's wall clock, e.g. clock -365d
  advance DURATION   time passes for the phone only (not the server), e.g. advance 8d
  screen             show the current screen
  transparency       what the financier can and cannot do on this phone
  state              the agent's state
  quit               power off
Durations: a number and s, m, h, d or w, e.g. 90s, 6h, 3d.";

/// Runs the phone until `quit` or the end of standard input.
pub fn run(args: Args) -> Result<()> {
    let storage: Box<dyn Storage> = match &args.state_dir {
        Some(dir) => Box::new(
            FileStorage::in_dir(dir)
                .with_context(|| format!("opening the phone's storage in {}", dir.display()))?,
        ),
        None => Box::new(MemoryStorage::new()),
    };
    let root = std::fs::read_to_string(&args.attestation_root)
        .map_err(anyhow::Error::from)
        .and_then(|pem| Ok(DevelopmentRoot::from_pem(&pem)?))
        .with_context(|| {
            format!(
                "reading the development attestation root {} (start `lien serve` first, or \
                 pass --attestation-root)",
                args.attestation_root.display()
            )
        })?;
    let now = jiff::Timestamp::now().as_second();
    let hardware = match &args.state_dir {
        Some(dir) => Some(
            SimHardware::in_dir(&dir.join("hardware"))
                .with_context(|| format!("opening the phone's hardware in {}", dir.display()))?,
        ),
        None => None,
    };
    let identity = Identity {
        imei1: args.imei.clone(),
        imei2: args.imei2.clone(),
        serial: args.serial.clone(),
        model: args.model.clone(),
    };
    let factory = factory_identity(&root, &identity, now);
    let config = AgentConfig::default().with_offline_unlock_hours(args.offline_unlock_hours);
    // Standard input is read on its own thread: a blocking read must not hold up the timers
    // that make check-ins happen on schedule.
    let (lines_tx, lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let transport = HttpTransport::new(&args.server);
            let phone = match hardware {
                Some(hardware) => Phone::with_hardware(
                    transport,
                    identity,
                    storage,
                    hardware.with_factory(factory),
                    SimClock::real(),
                    config,
                    None,
                ),
                None => Phone::new(
                    transport,
                    identity,
                    factory,
                    storage,
                    SimClock::real(),
                    config,
                    None,
                ),
            };
            drive(phone, lines_rx).await
        })
}

/// Prints the screen whenever it changes.
struct Screen {
    last: Option<String>,
}

impl Screen {
    fn show(&mut self, phone: &Phone, always: bool) {
        let text = phone.render();
        if always || self.last.as_deref() != Some(&text) {
            println!("{text}");
            self.last = Some(text);
        }
    }
}

async fn drive(
    mut phone: Phone,
    mut lines: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<()> {
    println!(
        "Simulated phone {} powered on. Type `help` for commands.",
        phone.identity().imei1
    );
    let mut screen = Screen { last: None };
    screen.show(&phone, true);
    phone.run_due().await;
    screen.show(&phone, false);
    // The push channel stays open beside the terminal, so a payment shows within a second
    // without typing `check`; check-ins go on as the fallback.
    phone.enable_push(PushBackoff::default());
    loop {
        let push = phone.push_enabled();
        let wait = phone
            .agent()
            .next_wakeup()
            .map(|at| at.saturating_sub(phone.now().mono))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                match command(&mut phone, line.trim()).await {
                    Ok(Step::Quit) => break,
                    Ok(Step::Show) => screen.show(&phone, true),
                    Ok(Step::Continue) => screen.show(&phone, false),
                    Err(err) => println!("error: {err:#}"),
                }
            }
            // `recv_push` is cancel-safe: losing the race to a typed line loses nothing.
            Some(answer) = phone.recv_push(), if push => {
                phone.take_push(answer).await;
                screen.show(&phone, false);
            }
            _ = tokio::time::sleep(wait) => {
                phone.run_due().await;
                screen.show(&phone, false);
            }
        }
    }
    println!("Powered off.");
    Ok(())
}

enum Step {
    Continue,
    Show,
    Quit,
}

async fn command(phone: &mut Phone, line: &str) -> Result<Step> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(Step::Continue);
    };
    let arg = words.next();
    match (verb, arg) {
        ("help", _) => println!("{HELP}"),
        ("check", None) => {
            phone.check_again().await;
            let status = phone.status();
            match (status.mode, status.notice) {
                (Mode::Released, _) => println!("Released: this phone no longer checks in."),
                (Mode::Free, _) => println!("Not financed: there is nothing to check."),
                (_, Some(notice)) => println!("{notice}"),
                (_, None) => println!("Checked in."),
            }
        }
        ("code", Some(code)) => {
            let outcome = phone.enter_code(code);
            println!("{}", describe(&outcome));
        }
        ("emergency", None) => {
            let outcome = phone.take_emergency_use();
            println!("{}", describe_emergency(&outcome));
        }
        ("reset", None) => {
            println!("Factory reset: data wiped, protected state kept. Setting up...");
            phone.factory_reset().await;
            return Ok(Step::Show);
        }
        ("reflash", None) => {
            println!("Full reflash: everything wiped. Setting up...");
            phone.reflash().await;
            return Ok(Step::Show);
        }
        ("reboot", None) => {
            phone.reboot().await;
            return Ok(Step::Show);
        }
        ("offline", None) => {
            phone.set_online(false);
            println!("The phone is offline.");
        }
        ("online", None) => {
            phone.set_online(true);
            println!("The phone is online.");
            phone.run_due().await;
        }
        ("clock", Some(shift)) => {
            let (sign, rest) = match shift.as_bytes().first() {
                Some(b'-') => (-1, &shift[1..]),
                Some(b'+') => (1, &shift[1..]),
                _ => bail!("say clock +DURATION or clock -DURATION, e.g. clock -365d"),
            };
            let by = parse_duration(rest)?.as_secs() as i64 * sign;
            phone.shift_wall_clock(by);
            println!("Wall clock moved by {shift}.");
        }
        ("advance", Some(by)) => {
            let by = parse_duration(by)?;
            phone.advance(by).await;
            println!("Advanced {}.", humanize(by));
        }
        ("screen", None) => return Ok(Step::Show),
        ("transparency", None) => println!("{}", phone.transparency()),
        ("state", None) => {
            let now = phone.now();
            print!("{}", phone.status());
            println!(
                "network: {}\nwall clock: {} (Unix), up {}",
                if phone.is_online() {
                    "online"
                } else {
                    "offline"
                },
                now.wall,
                humanize(now.mono)
            );
        }
        ("quit" | "exit", None) => return Ok(Step::Quit),
        _ => bail!("unknown command {line:?}; type `help`"),
    }
    Ok(Step::Continue)
}

fn describe(outcome: &CodeOutcome) -> String {
    match outcome {
        CodeOutcome::Accepted { unlocked_for } => {
            format!(
                "Code accepted: unlocked for up to {}.",
                humanize(*unlocked_for)
            )
        }
        CodeOutcome::Wrong { .. } => "Code refused: wrong or already used.".into(),
        CodeOutcome::Throttled { wait } => {
            format!("Too many wrong codes: try again in {}.", humanize(*wait))
        }
        CodeOutcome::Malformed => "A code has 8 digits.".into(),
        CodeOutcome::NothingToUnlock => "Nothing to unlock.".into(),
        CodeOutcome::NotSaved => "The code could not be saved; try again.".into(),
    }
}

fn describe_emergency(outcome: &EmergencyOutcome) -> String {
    match outcome {
        EmergencyOutcome::Started { length, .. } => format!(
            "Emergency use started: the phone works for {}, then locks again.",
            humanize(*length)
        ),
        EmergencyOutcome::Running { remaining } => {
            format!("Emergency use is on: {} left.", humanize(*remaining))
        }
        EmergencyOutcome::TooSoon { wait } => format!(
            "Emergency use refused: already taken; available again in {}.",
            humanize(*wait)
        ),
        EmergencyOutcome::NotOffered => {
            "No emergency use: the phone is not locked, or the policy offers none.".into()
        }
        EmergencyOutcome::NotSaved => "Emergency use could not be saved; try again.".into(),
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `90s`, `15m`, `6h`, `3d`, `2w`.
fn parse_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .with_context(|| format!("{text:?} has no unit (s, m, h, d or w)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} does not start with a number"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("{unit:?} is not a unit; use s, m, h, d or w"),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .with_context(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("3d").unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3y").is_err());
    }
}
