//! Serving a footage file: 200, 206 (one range, or `multipart/byteranges`), 304 and 416
//! with `ETag`, `Last-Modified`, `Accept-Ranges` and `Content-Disposition` for downloads.
//!
//! It turns a [`FootageFile`] and the request's conditional headers into a response with
//! [`super::range`]'s plan; the bytes go out with sendfile ([`super::conn`]). It never
//! finds files itself: the backend opened this one by its catalog name.

use super::backend::FootageFile;
use super::http::{percent_encode_filename, Body, Request, Response};
use super::range::{self, RangePlan};

/// The response for GET/HEAD of `f`; `download` adds `Content-Disposition: attachment`.
pub fn serve(request: &Request, f: FootageFile, download: bool) -> Response {
    let tag = range::etag(f.identity, f.len, f.modified);
    let modified = range::http_date(f.modified);
    let common = |r: Response| -> Response {
        let mut r = r
            .with("ETag", tag.clone())
            .with("Last-Modified", modified.clone())
            .with("Accept-Ranges", "bytes")
            .with("Cache-Control", "no-cache");
        if download {
            r = r.with(
                "Content-Disposition",
                format!(
                    "attachment; filename=\"{}\"; filename*=UTF-8''{}",
                    f.name.replace(['"', '\\'], "_"),
                    percent_encode_filename(&f.name)
                ),
            );
        }
        r
    };
    if range::not_modified(
        request.header("if-none-match"),
        request.header("if-modified-since"),
        &tag,
        f.modified,
    ) {
        return common(Response::empty(304));
    }
    match range::plan(
        request.header("range"),
        request.header("if-range"),
        f.len,
        &tag,
        f.modified,
    ) {
        RangePlan::Full => common(Response::new(
            200,
            f.content_type,
            Body::File {
                file: f.file,
                start: 0,
                len: f.len,
            },
        )),
        RangePlan::Partial(ranges) if ranges.len() == 1 => {
            let (s, e) = ranges[0];
            common(
                Response::new(
                    206,
                    f.content_type,
                    Body::File {
                        file: f.file,
                        start: s,
                        len: e - s + 1,
                    },
                )
                .with("Content-Range", range::content_range(s, e, f.len)),
            )
        }
        RangePlan::Partial(ranges) => {
            let boundary = format!("dashcam{}", tag.trim_matches('"').replace('-', ""));
            let (parts, tail) = range::multipart_parts(&ranges, f.len, f.content_type, &boundary);
            common(Response::new(
                206,
                &format!("multipart/byteranges; boundary={boundary}"),
                Body::Ranges {
                    file: f.file,
                    parts,
                    tail,
                },
            ))
        }
        RangePlan::Unsatisfiable => common(
            Response::error(
                416,
                "range_not_satisfiable",
                &format!("the file has {} bytes", f.len),
            )
            .with("Content-Range", format!("bytes */{}", f.len)),
        ),
    }
}
