//! A 5x7 bitmap font for the text the test pattern burns into its frames.
//!
//! Owns the glyph bitmaps (digits, upper-case letters, `- : . / @ ?` and space; lower-case
//! is drawn as upper-case, anything else as `?`) and drawing them, scaled by an integer
//! factor, into a packed RGB canvas. It must never allocate and never panic: text that
//! falls outside the canvas is clipped, and a canvas buffer shorter than its stated size
//! is drawn into only where it has bytes.

/// Glyph cell size in font pixels (before scaling).
pub const GLYPH_WIDTH: usize = 5;
pub const GLYPH_HEIGHT: usize = 7;
/// Horizontal advance per character, in font pixels (glyph + one column of spacing).
pub const ADVANCE: usize = GLYPH_WIDTH + 1;

/// Rows top to bottom; bit 4 is the leftmost pixel.
type Glyph = [u8; GLYPH_HEIGHT];

const QUESTION: Glyph = [
    0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100,
];

/// The bitmap for `c`.
pub fn glyph(c: u8) -> &'static Glyph {
    match c.to_ascii_uppercase() {
        b'0' => &[
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
        b'1' => &[
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        b'2' => &[
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
        b'3' => &[
            0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
        ],
        b'4' => &[
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
        b'5' => &[
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
        b'6' => &[
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
        b'7' => &[
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
        b'8' => &[
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
        b'9' => &[
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
        b' ' => &[0; GLYPH_HEIGHT],
        b'-' => &[0, 0, 0, 0b11111, 0, 0, 0],
        b':' => &[0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        b'.' => &[0, 0, 0, 0, 0, 0b01100, 0b01100],
        b'/' => &[
            0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000,
        ],
        b'@' => &[
            0b01110, 0b10001, 0b10111, 0b10101, 0b10111, 0b10000, 0b01110,
        ],
        b'A' => &[
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        b'B' => &[
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
        b'C' => &[
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
        b'D' => &[
            0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110,
        ],
        b'E' => &[
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
        b'F' => &[
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        b'G' => &[
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
        b'H' => &[
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        b'I' => &[
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        b'J' => &[
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
        b'K' => &[
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
        b'L' => &[
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
        b'M' => &[
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
        b'N' => &[
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
        b'O' => &[
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        b'P' => &[
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        b'Q' => &[
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
        b'R' => &[
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
        b'S' => &[
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
        b'T' => &[
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        b'U' => &[
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        b'V' => &[
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
        b'W' => &[
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
        b'X' => &[
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
        b'Y' => &[
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        b'Z' => &[
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
        _ => &QUESTION,
    }
}

/// Width in canvas pixels of `chars` characters at `scale` (no trailing spacing column).
pub fn text_width(chars: usize, scale: usize) -> usize {
    if chars == 0 {
        0
    } else {
        (chars * ADVANCE - 1) * scale
    }
}

/// Height in canvas pixels of one line of text at `scale`.
pub fn text_height(scale: usize) -> usize {
    GLYPH_HEIGHT * scale
}

/// Fill the rectangle `x..x+w`, `y..y+h` of a packed RGB canvas `width` x `height`,
/// clipped to the canvas.
pub fn fill_rect(
    canvas: &mut [u8],
    width: usize,
    height: usize,
    (x, y, w, h): (usize, usize, usize, usize),
    rgb: [u8; 3],
) {
    let x_end = x.saturating_add(w).min(width);
    let y_end = y.saturating_add(h).min(height);
    if x >= x_end || y >= y_end {
        return;
    }
    for row in y..y_end {
        let start = (row * width + x) * 3;
        let end = (row * width + x_end) * 3;
        let Some(line) = canvas.get_mut(start..end) else {
            return;
        };
        for px in line.chunks_exact_mut(3) {
            px.copy_from_slice(&rgb);
        }
    }
}

/// Draw `text` with its top-left corner at (`x`, `y`), each font pixel `scale` x `scale`
/// canvas pixels, in colour `rgb`. Only the set pixels are drawn (transparent background).
pub fn draw_text(
    canvas: &mut [u8],
    width: usize,
    height: usize,
    (x, y): (usize, usize),
    text: &[u8],
    scale: usize,
    rgb: [u8; 3],
) {
    let scale = scale.max(1);
    for (i, &c) in text.iter().enumerate() {
        let gx = x.saturating_add(i.saturating_mul(ADVANCE * scale));
        if gx >= width {
            break;
        }
        if c == b' ' {
            continue;
        }
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..GLYPH_WIDTH {
                if bits & (0b10000 >> col) != 0 {
                    let rect = (
                        gx + col * scale,
                        y.saturating_add(row * scale),
                        scale,
                        scale,
                    );
                    fill_rect(canvas, width, height, rect, rgb);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_fit_five_columns() {
        for c in 0u8..=255 {
            for row in glyph(c) {
                assert!(*row < 32, "glyph {c} row {row:#b} wider than 5");
            }
        }
        assert_eq!(glyph(b'a'), glyph(b'A'));
        assert_eq!(glyph(b'~'), &QUESTION);
    }

    #[test]
    fn draws_scaled_and_clips() {
        let (w, h) = (20, 10);
        let mut canvas = vec![0u8; w * h * 3];
        draw_text(&mut canvas, w, h, (0, 0), b"1", 2, [255, 255, 255]);
        // '1' row 0 is 00100: font column 2 -> canvas columns 4 and 5 at scale 2.
        let px = |c: &[u8], x: usize, y: usize| c[(y * w + x) * 3];
        assert_eq!(px(&canvas, 4, 0), 255);
        assert_eq!(px(&canvas, 5, 1), 255);
        assert_eq!(px(&canvas, 3, 0), 0);
        assert_eq!(px(&canvas, 6, 0), 0);
        // Far outside, partly outside, and a short buffer: nothing panics.
        draw_text(
            &mut canvas,
            w,
            h,
            (usize::MAX - 3, usize::MAX),
            b"88",
            4,
            [1, 2, 3],
        );
        draw_text(
            &mut canvas,
            w,
            h,
            (15, 5),
            b"2024-01-01 12:00",
            4,
            [1, 2, 3],
        );
        let mut short = vec![0u8; 10];
        draw_text(&mut short, w, h, (0, 0), b"8", 3, [1, 2, 3]);
        fill_rect(&mut short, w, h, (0, 0, w, h), [9, 9, 9]);
        assert_eq!(text_width(3, 2), 34);
        assert_eq!(text_width(0, 2), 0);
    }
}
