//! What the bulk CSV reader (`bulk_csv_reader`, `bulk_csv_row`, used by `POST /v1/devices/bulk`)
//! makes of good and bad rows: the fuzz target checks invariants, this checks the answers.

use lien_server::error::ApiError;
use lien_server::fuzzing::{bulk_csv_reader, bulk_csv_row, check_enrollment};
use lien_server::wire::PolicyJson;

const HEADER: &str = "contract_ref,imei1,imei2,serial,model,currency,time_zone,down_payment_minor,installments,policy\n";

/// One row: its contract reference and outcome, or the error of a row that cannot be read.
type Row = Result<(String, Result<String, ApiError>), ApiError>;

/// Each row of `body`.
fn rows(body: &str) -> Vec<Row> {
    let (mut reader, headers) = bulk_csv_reader(body.as_bytes()).expect("the header reads");
    reader
        .records()
        .map(|record| {
            bulk_csv_row(&headers, record).map(|(contract_ref, request)| {
                let outcome = request.and_then(|r| {
                    check_enrollment(&r)?;
                    Ok(format!(
                        "{} {:?} {}",
                        r.imei1,
                        r.policy,
                        r.plan.installments.len()
                    ))
                });
                (contract_ref, outcome)
            })
        })
        .collect()
}

#[test]
fn a_good_row_becomes_an_enrollment_with_its_installments() {
    let body = format!(
        "{HEADER}ACC-1, 490154203237518 ,,LIEN0000042,Pixel 8,KES,Africa/Nairobi,1000,2026-04-01:5000; 2026-05-01:5000,kenya\n"
    );
    let rows = rows(&body);
    assert_eq!(rows.len(), 1);
    let (contract_ref, outcome) = rows[0].as_ref().unwrap();
    assert_eq!(contract_ref, "ACC-1");
    assert_eq!(
        outcome.as_ref().unwrap(),
        &format!("490154203237518 {:?} 2", PolicyJson::Preset("kenya".into()))
    );
}

#[test]
fn bad_rows_are_refused_with_their_field_named_and_do_not_stop_the_others() {
    let body = format!(
        "{HEADER}ACC-2,490154203237518,,S1,M,KES,Africa/Nairobi,,2026-04-01=5000,kenya\n\
         ACC-3,490154203237519,,S1,M,KES,Africa/Nairobi,,2026-04-01:5000,kenya\n\
         ACC-4,490154203237518,,S1,M,KES,Africa/Nairobi,lots,2026-04-01:5000,kenya\n\
         ACC-5,490154203237518,,S1,M,KES,Africa/Nairobi,,2026-04-01:5000,kenya\n"
    );
    let rows = rows(&body);
    let messages: Vec<String> = rows
        .iter()
        .map(|row| match row.as_ref().unwrap() {
            (_, Ok(_)) => "ok".to_string(),
            (_, Err(ApiError::Invalid(m))) => m.split(':').next().unwrap().to_string(),
            (_, Err(ApiError::BadRequest(_))) => "bad request".to_string(),
            (_, Err(e)) => panic!("unexpected {e:?}"),
        })
        .collect();
    assert_eq!(messages, ["installments", "imei1", "bad request", "ok"]);
    assert_eq!(rows[2].as_ref().unwrap().0, "ACC-4");
}

#[test]
fn a_row_of_another_width_than_the_header_cannot_be_read() {
    let body = format!("{HEADER}a,b\n");
    let (mut reader, headers) = bulk_csv_reader(body.as_bytes()).unwrap();
    let record = reader.records().next().unwrap();
    assert!(matches!(
        bulk_csv_row(&headers, record),
        Err(ApiError::BadRequest(_))
    ));
}
