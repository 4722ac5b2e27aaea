//! `lien imei`: checks an IMEI the way the server will at enrolment, so that a financier can
//! catch a mistyped number before a phone is sold.

use anyhow::Result;
use lien_core::Imei;

/// Arguments of `lien imei`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The IMEI, 15 digits (or a 16-digit IMEISV); spaces and dashes are ignored.
    imei: String,
}

/// Checks the IMEI and prints it, or fails with the reason it is wrong.
pub fn run(args: &Args) -> Result<()> {
    print!("{}", report(&args.imei)?);
    Ok(())
}

/// What `lien imei` prints for `input`.
fn report(input: &str) -> Result<String> {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    // Phones often report an IMEISV (the IMEI's 14 digits and a 2-digit software version
    // instead of the check digit). A 16-digit input cannot be anything else, so it is read
    // as one; it has no check digit, so the IMEI's is computed rather than verified.
    if digits.len() == 16 {
        let imei = Imei::from_imeisv(input)?;
        return Ok(format!(
            "IMEISV {digits} (software version {version})\n\
             IMEI {imei} (check digit computed from the IMEISV)\n\
             TAC {tac}\n",
            version = &digits[14..],
            tac = imei.tac(),
        ));
    }
    let imei = Imei::parse(input)?;
    Ok(format!("IMEI {imei} is valid\nTAC {}\n", imei.tac()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_a_grouped_imei() {
        assert_eq!(
            report("35-209900-176148-1").unwrap(),
            "IMEI 352099001761481 is valid\nTAC 35209900\n"
        );
    }

    #[test]
    fn reads_sixteen_digits_as_an_imeisv() {
        let out = report("35 209900 176148 23").unwrap();
        assert!(out.contains("IMEISV 3520990017614823 (software version 23)"));
        assert!(out.contains("IMEI 352099001761481 "));
        assert!(out.contains("TAC 35209900"));
    }

    #[test]
    fn explains_a_wrong_check_digit() {
        let err = report("352099001761482").unwrap_err();
        assert_eq!(
            err.to_string(),
            "IMEI check digit is 2, but the first 14 digits require 1: the number is mistyped"
        );
    }
}
