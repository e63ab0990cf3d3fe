//! The config loader: never panics; what it accepts validates; what it refuses names a
//! line of the text (splitting the input does not apply: a config file is read whole).

#![no_main]
use dashcam::config::ConfigError;
use dashcam::fuzzing::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(result) = config(data) else { return };
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    match result {
        Ok(c) => assert!(c.validate().is_ok(), "accepted but invalid: {c:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.toml"), "{message}");
            if let ConfigError::Syntax { line: Some(l), .. }
            | ConfigError::Invalid { line: Some(l), .. } = e
            {
                assert!((1..=lines).contains(&l), "line {l} of {lines}: {message}");
            }
        }
    }
});
