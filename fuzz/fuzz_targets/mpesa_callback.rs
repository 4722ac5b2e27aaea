#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lien_fuzz::mpesa_callback(data));
