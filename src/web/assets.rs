//! The phone page's files, built into the binary from `assets/` (no CDN, no framework:
//! there is no internet in a car), each with its type and an entity tag of its content.
//!
//! It owns the list of files only.

use std::sync::OnceLock;

pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        path: "/icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/icon.svg"),
    },
    Asset {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("../../assets/manifest.webmanifest"),
    },
];

pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// A strong entity tag of the asset's bytes (FNV-1a, computed once per asset).
pub fn etag(asset: &'static Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = a.bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("\"{h:016x}\"")
            })
            .collect()
    });
    let i = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .unwrap_or(0);
    tags.get(i).map_or("\"0\"", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_and_its_files_are_there_and_reference_nothing_outside() {
        let page = std::str::from_utf8(find("/").expect("index").bytes).expect("utf-8");
        for file in ["/app.js", "/app.css", "/icon.svg", "/manifest.webmanifest"] {
            assert!(find(file).is_some(), "{file}");
            assert!(page.contains(file), "index.html does not load {file}");
        }
        for a in ASSETS {
            // The SVG namespace is a name, not something loaded.
            let text = String::from_utf8_lossy(a.bytes).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{} loads something from outside",
                a.path
            );
        }
        assert_ne!(
            etag(find("/").expect("index")),
            etag(find("/app.js").expect("js"))
        );
    }
}
