#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lien_fuzz::provider_statement(data));
