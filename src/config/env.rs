//! Configuration keys from environment variables (`DASHCAM_SOURCE`, `DASHCAM_CAMERA_WIDTH`,
//! ...), for containers and other service managers that configure through the environment.
//!
//! It owns the mapping from a variable's name to a key (found from the configuration's own
//! field lists, so a new key is reachable without a change here) and the reading of its
//! value. It never reads the environment itself and never validates: `config` does both.

use serde::de::{self, Visitor};
use serde::Deserialize;

use crate::config::{Config, TestPatternConfig};

/// The prefix of every variable.
pub const PREFIX: &str = "DASHCAM_";

/// One variable that names a key.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub var: String,
    /// The table (`camera`), or none for a top-level key.
    pub table: Option<&'static str>,
    pub leaf: String,
    pub value: toml::Value,
}

impl Override {
    /// `camera.width`, as validation errors name keys.
    pub fn key(&self) -> String {
        match self.table {
            Some(t) => format!("{t}.{}", self.leaf),
            None => self.leaf.clone(),
        }
    }

    /// The override alone as a TOML document.
    pub fn as_toml(&self) -> String {
        let mut t = toml::Table::new();
        self.apply(&mut t);
        toml::to_string(&t).unwrap_or_default()
    }

    pub fn apply(&self, t: &mut toml::Table) {
        match self.table {
            None => {
                t.insert(self.leaf.clone(), self.value.clone());
            }
            Some(name) => {
                let entry = t
                    .entry(name.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                if let Some(table) = entry.as_table_mut() {
                    table.insert(self.leaf.clone(), self.value.clone());
                }
            }
        }
    }
}

/// The tables of the configuration and their keys.
fn tables() -> [(&'static str, &'static [&'static str]); 3] {
    [
        ("test_pattern", fields_of::<TestPatternConfig>()),
        (
            "camera",
            fields_of::<crate::source::camera_config::CameraConfig>(),
        ),
        ("gpio", fields_of::<crate::gpio::GpioConfig>()),
    ]
}

/// The variables of `env` that name a configuration key, in name order.
pub fn overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let top = fields_of::<Config>();
    let tables = tables();
    let mut out: Vec<Override> = env
        .into_iter()
        .filter_map(|(var, raw)| {
            let name = var.strip_prefix(PREFIX)?.to_ascii_lowercase();
            let value = value_of(&raw);
            for (table, keys) in &tables {
                if let Some(leaf) = name.strip_prefix(table).and_then(|r| r.strip_prefix('_')) {
                    if keys.contains(&leaf) {
                        return Some(Override {
                            var,
                            table: Some(table),
                            leaf: leaf.to_string(),
                            value,
                        });
                    }
                }
            }
            let is_table = tables.iter().any(|(t, _)| *t == name);
            (top.contains(&name.as_str()) && !is_table).then_some(Override {
                var,
                table: None,
                leaf: name,
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// A TOML value when the text is one, else the text as a string.
fn value_of(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The field names of a struct, as its `Deserialize` implementation asks for them.
fn fields_of<T: Deserialize<'static>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names taken"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_has_a_variable_and_others_are_ignored() {
        let o = overrides(env(&[
            ("DASHCAM_SOURCE", "rtsp://cam/x"),
            ("DASHCAM_SEGMENT_SECONDS", "30"),
            ("DASHCAM_CAMERA_WIDTH", "1280"),
            (
                "DASHCAM_CAMERA_PASSWORD_FILE",
                "/run/secrets/camera/password",
            ),
            ("DASHCAM_TEST_PATTERN_FPS", "10"),
            ("DASHCAM_GPIO_SHUTDOWN_COMMAND", r#"["/bin/true"]"#),
            ("DASHCAM_CAMERA", "rpicam-vid -t 0"),
            ("DASHCAM_TEST_INPUTS", "/x"),
            ("DASHCAM_RUNNER", "qemu-arm-static"),
            ("PATH", "/bin"),
        ]));
        let keys: Vec<String> = o.iter().map(Override::key).collect();
        assert_eq!(
            keys,
            [
                "camera.password_file",
                "camera.width",
                "gpio.shutdown_command",
                "segment_seconds",
                "source",
                "test_pattern.fps"
            ]
        );
        assert_eq!(o[1].value, toml::Value::Integer(1280));
        assert_eq!(o[4].value, toml::Value::String("rtsp://cam/x".into()));
    }

    #[test]
    fn the_environment_overrides_the_file_and_errors_name_the_variable() {
        let file = "dir = \"/from/file\"\nsegment_seconds = 60\n[camera]\nwidth = 640\n";
        let c = Config::from_toml_and_env(
            file,
            "f.toml",
            env(&[
                ("DASHCAM_DIR", "/footage"),
                ("DASHCAM_CAMERA_HEIGHT", "480"),
                ("DASHCAM_REQUIRE_MOUNT", "true"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.dir, std::path::PathBuf::from("/footage"));
        assert_eq!((c.camera.width, c.camera.height), (640, 480));
        assert!(c.require_mount);
        assert_eq!(c.segment_seconds, 60);

        let e = Config::from_toml_and_env(file, "f.toml", env(&[("DASHCAM_CAMERA_WIDTH", "7")]))
            .expect_err("range");
        let msg = e.to_string();
        assert!(
            msg.contains("DASHCAM_CAMERA_WIDTH") && msg.contains("camera.width"),
            "{msg}"
        );
        let e = Config::from_toml_and_env(file, "f.toml", env(&[("DASHCAM_FAST", "\"yes\"")]))
            .expect_err("type");
        assert!(e.to_string().contains("DASHCAM_FAST"), "{e}");
    }
}
