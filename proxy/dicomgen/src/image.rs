//! Synthetic pixel data: small, deterministic pictures that look vaguely like
//! the modality (a body section, a chest film, an ultrasound sector, a
//! mammogram) with the series/image number and the view burned in, so that a
//! rendered JPEG is recognizable by a person and by a test, and a marker at
//! the centre ([`MARKER`]) that a browser test finds in a viewer's pixels.

/// Width and height of every generated image.
pub const SIZE: usize = 128;

/// The marker at the centre of every image (rows and columns alike): white
/// (the scene's [`white_level`]) on `outer` but black (0) on `inner`. Seen
/// through a viewer that fits the image to its viewport, the viewport's
/// centre is black and the points at 6/128 of the image's displayed size
/// left, right, above and below it are white (proxy/tests/browser/ohif.test.mjs).
pub(crate) struct Marker {
    pub outer: std::ops::Range<usize>,
    pub inner: std::ops::Range<usize>,
}

pub(crate) const MARKER: Marker = Marker {
    outer: 56..72,
    inner: 60..68,
};

/// What kind of picture to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scene {
    /// Axial body section (CT/MR). `contrast` selects a tissue palette.
    Section { contrast: SectionContrast },
    /// Projection radiograph (CR/DX), frontal or lateral.
    Radiograph { lateral: bool },
    /// Ultrasound sector with speckle.
    Ultrasound,
    /// Mammogram of the left or right breast.
    Mammogram { left: bool },
}

/// Tissue palette of an axial section, as stored values (before rescale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionContrast {
    /// CT: stored = HU + 1024 (RescaleIntercept -1024).
    Ct,
    /// MR T1-like: fluid dark, fat bright.
    T1,
    /// MR T2-like: fluid bright.
    T2,
    /// MR FLAIR-like: fluid dark, lesion bright.
    Flair,
}

/// The brightest stored value of a scene: used for burned-in text and as
/// the top of the VOI window, so that a renderer that windows with
/// WindowCenter/WindowWidth and one that stretches min..max agree.
pub(crate) fn white_level(scene: Scene, bits: u16) -> u16 {
    match scene {
        Scene::Section { contrast } => match contrast {
            SectionContrast::Ct => 2024,
            SectionContrast::T1 => 2900,
            SectionContrast::T2 => 3600,
            SectionContrast::Flair => 3300,
        },
        _ => (1u16 << bits) - 1,
    }
}

/// Parameters of one image.
pub(crate) struct Frame<'a> {
    pub scene: Scene,
    /// 0-based position of this image in its series.
    pub index: u32,
    /// Number of images in the series.
    pub count: u32,
    /// Study-level seed, so that two studies do not look identical.
    pub seed: u64,
    /// Largest stored value, also the colour of burned-in text (see
    /// [`white_level`]).
    pub max: u16,
    /// Text burned in at the top left (e.g. "S2 I3").
    pub label: &'a str,
    /// Text burned in at the top right (e.g. "CT", "LCC").
    pub tag: &'a str,
}

/// Renders a frame as `SIZE * SIZE` stored values, row-major.
pub(crate) fn render(frame: &Frame<'_>) -> Vec<u16> {
    let mut px = vec![0u16; SIZE * SIZE];
    let max = f64::from(frame.max);
    // Position in the series, 0..1, drives the shape changes between slices.
    let t = if frame.count > 1 {
        f64::from(frame.index) / f64::from(frame.count - 1)
    } else {
        0.5
    };
    let jitter = (frame.seed % 1000) as f64 / 1000.0; // 0..1, per study
    let mut rng =
        XorShift::new(frame.seed ^ (u64::from(frame.index) << 32) ^ 0x9E37_79B9_7F4A_7C15);

    for y in 0..SIZE {
        for x in 0..SIZE {
            let fx = x as f64 + 0.5;
            let fy = y as f64 + 0.5;
            let v = match frame.scene {
                Scene::Section { contrast } => section(fx, fy, t, jitter, contrast, max),
                Scene::Radiograph { lateral } => radiograph(fx, fy, jitter, lateral, max),
                Scene::Ultrasound => ultrasound(fx, fy, t, jitter, max, &mut rng),
                Scene::Mammogram { left } => mammogram(fx, fy, jitter, left, max),
            };
            px[y * SIZE + x] = v.clamp(0.0, max).round() as u16;
        }
    }

    // A position bar at the bottom: its length grows with the image index.
    let bar_len = ((f64::from(frame.index) + 1.0) / f64::from(frame.count.max(1))
        * (SIZE as f64 - 8.0)) as usize;
    for y in SIZE - 5..SIZE - 3 {
        for x in 4..4 + bar_len.max(2) {
            px[y * SIZE + x] = frame.max;
        }
    }

    // The marker a browser test looks for in a viewer's rendered pixels:
    // a white square ring around a black core, centred on the image
    // ([`MARKER`]).
    for y in MARKER.outer.clone() {
        for x in MARKER.outer.clone() {
            px[y * SIZE + x] = if MARKER.inner.contains(&y) && MARKER.inner.contains(&x) {
                0
            } else {
                frame.max
            };
        }
    }

    draw_text(&mut px, 3, 3, frame.label, frame.max);
    let tag_w = text_width(frame.tag);
    draw_text(
        &mut px,
        SIZE.saturating_sub(tag_w + 3),
        3,
        frame.tag,
        frame.max,
    );
    px
}

fn ellipse(fx: f64, fy: f64, cx: f64, cy: f64, rx: f64, ry: f64) -> f64 {
    let dx = (fx - cx) / rx;
    let dy = (fy - cy) / ry;
    dx * dx + dy * dy
}

fn section(fx: f64, fy: f64, t: f64, jitter: f64, contrast: SectionContrast, max: f64) -> f64 {
    // Stored values for air, soft tissue, fat, fluid, bone, lesion.
    let (air, soft, fat, fluid, bone, lesion) = match contrast {
        // HU: air -1024, soft tissue 100, fat -150, fluid -300, bone 1000,
        // lesion 400 (contrasts exaggerated so that any rendering shows them).
        SectionContrast::Ct => (0.0, 1124.0, 874.0, 724.0, 2024.0, 1424.0),
        SectionContrast::T1 => (0.0, 1500.0, 2900.0, 400.0, 200.0, 1300.0),
        SectionContrast::T2 => (0.0, 1300.0, 2200.0, 3600.0, 150.0, 2600.0),
        SectionContrast::Flair => (0.0, 1500.0, 1800.0, 300.0, 150.0, 3300.0),
    };
    let c = 64.0;
    // The body outline breathes along the series.
    let rx = 50.0 + 4.0 * (t * std::f64::consts::PI).sin() + 3.0 * jitter;
    let ry = 40.0 + 6.0 * (t * std::f64::consts::PI).sin();
    let body = ellipse(fx, fy, c, c + 4.0, rx, ry);
    if body > 1.0 {
        return air;
    }
    // Subcutaneous fat rim, then a bony ring.
    if body > 0.86 {
        return fat;
    }
    let inner = ellipse(fx, fy, c, c + 4.0, rx * 0.88, ry * 0.88);
    if inner > 0.9 {
        return bone;
    }
    // Two ventricle-like fluid spaces whose size changes with the slice.
    let vr = 6.0 + 8.0 * (t * std::f64::consts::PI).sin();
    if ellipse(fx, fy, c - 12.0, c + 2.0, vr * 0.6, vr) <= 1.0
        || ellipse(fx, fy, c + 12.0, c + 2.0, vr * 0.6, vr) <= 1.0
    {
        return fluid;
    }
    // A round lesion visible only on the second half of the series.
    if t > 0.4 && ellipse(fx, fy, c + 20.0 - 10.0 * jitter, c - 14.0, 5.0, 5.0) <= 1.0 {
        return lesion;
    }
    // Soft tissue with a gentle top-to-bottom gradient.
    let grad = (fy - c) / 128.0 * 0.08 * (soft - air);
    (soft + grad).min(max)
}

fn radiograph(fx: f64, fy: f64, jitter: f64, lateral: bool, max: f64) -> f64 {
    // MONOCHROME2 film: air is black, bone is white.
    let c = 64.0;
    let (body_rx, body_ry) = if lateral { (34.0, 56.0) } else { (52.0, 58.0) };
    let body = ellipse(fx, fy, c, c + 6.0, body_rx, body_ry);
    if body > 1.0 {
        return max * 0.04;
    }
    let mut v = max * 0.55;
    if !lateral {
        // Lungs: two dark ellipses; spine: bright column.
        let lung = ellipse(fx, fy, c - 22.0, c, 16.0 + 2.0 * jitter, 34.0).min(ellipse(
            fx,
            fy,
            c + 22.0,
            c,
            16.0,
            34.0 - 2.0 * jitter,
        ));
        if lung <= 1.0 {
            v = max * (0.18 + 0.1 * lung);
        }
        if (fx - c).abs() < 5.0 {
            v = max * 0.85;
        }
        // Ribs: faint horizontal arcs.
        if lung <= 1.0 && ((fy as i64) % 12) < 2 {
            v = max * 0.5;
        }
        // Heart shadow.
        if ellipse(fx, fy, c + 8.0, c + 18.0, 16.0, 13.0) <= 1.0 {
            v = max * 0.7;
        }
    } else {
        // Lateral: one lung field, spine at the back (right side of the image).
        if ellipse(fx, fy, c - 4.0, c, 22.0, 36.0) <= 1.0 {
            v = max * 0.22;
        }
        if (fx - (c + 26.0)).abs() < 5.0 && (fy - c).abs() < 52.0 {
            v = max * 0.85;
        }
    }
    v
}

fn ultrasound(fx: f64, fy: f64, t: f64, jitter: f64, max: f64, rng: &mut XorShift) -> f64 {
    // A sector whose apex is at the top centre.
    let ax = 64.0;
    let ay = 14.0;
    let dx = fx - ax;
    let dy = fy - ay;
    let r = (dx * dx + dy * dy).sqrt();
    let angle = dx.atan2(dy); // 0 straight down
    if dy <= 0.0 || angle.abs() > 0.75 || r > 108.0 {
        // Keep the noise stream aligned whatever the branch.
        let _ = rng.next_f64();
        return 0.0;
    }
    let speckle = rng.next_f64();
    let mut v = max * (0.25 + 0.35 * speckle) * (1.0 - r / 220.0);
    // An anechoic (dark) cyst moving along the series.
    let cx = 48.0 + 32.0 * t;
    if ellipse(fx, fy, cx, 70.0 + 10.0 * jitter, 12.0, 9.0) <= 1.0 {
        v = max * 0.03 * speckle;
    }
    // A bright interface line.
    if (fy - (40.0 + 6.0 * t + 0.15 * dx)).abs() < 1.2 {
        v = max * 0.9;
    }
    v
}

fn mammogram(fx: f64, fy: f64, jitter: f64, left: bool, max: f64) -> f64 {
    // Chest wall on one edge, breast as a half ellipse.
    let wall_x = if left { 0.0 } else { SIZE as f64 };
    let b = ellipse(fx, fy, wall_x, 64.0, 84.0, 52.0 + 4.0 * jitter);
    if b > 1.0 {
        return 0.0;
    }
    // Denser (brighter) near the chest wall, fading towards the nipple.
    let mut v = max * (0.75 - 0.45 * b);
    // Fibroglandular strands.
    let d = (fx - wall_x).abs();
    if ((d * 0.35 + fy * 0.2).sin() * (fy * 0.15).cos()).abs() > 0.92 {
        v = (v + max * 0.15).min(max);
    }
    // A small dense mass.
    if ellipse(fx, fy, (wall_x - 40.0).abs(), 56.0 + 8.0 * jitter, 4.0, 4.0) <= 1.0 {
        v = max * 0.95;
    }
    v
}

/// Tiny deterministic PRNG (no dependency).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------
// 5x7 bitmap font, drawn at scale 2 with a dark outline.

const SCALE: usize = 2;
const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;
const ADVANCE: usize = (GLYPH_W + 1) * SCALE;

fn glyph(c: char) -> [u8; GLYPH_H] {
    match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        ' ' => [0x00; GLYPH_H],
        // Anything else: a hollow box, so a missing glyph is obvious.
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

fn text_width(text: &str) -> usize {
    text.chars().count() * ADVANCE
}

fn lit(c: char, gx: isize, gy: isize) -> bool {
    if gx < 0 || gy < 0 || gx as usize >= GLYPH_W || gy as usize >= GLYPH_H {
        return false;
    }
    glyph(c)[gy as usize] & (0x10 >> gx) != 0
}

fn draw_text(px: &mut [u16], x0: usize, y0: usize, text: &str, max: u16) {
    for (i, c) in text.chars().enumerate() {
        let ox = x0 + i * ADVANCE;
        // Outline pass (black), then glyph pass (white).
        for pass in 0..2 {
            for sy in 0..(GLYPH_H * SCALE + 2) {
                for sx in 0..(GLYPH_W * SCALE + 2) {
                    let x = ox + sx;
                    let y = y0 + sy;
                    if x == 0 || y == 0 || x > SIZE || y > SIZE {
                        continue;
                    }
                    let (x, y) = (x - 1, y - 1);
                    let gx = (sx as isize - 1).div_euclid(SCALE as isize);
                    let gy = (sy as isize - 1).div_euclid(SCALE as isize);
                    let on = lit(c, gx, gy);
                    if pass == 1 {
                        if on {
                            px[y * SIZE + x] = max;
                        }
                    } else {
                        // Outline: any lit neighbour in glyph space.
                        let near = (-1..=1).any(|dy| {
                            (-1..=1).any(|dx| {
                                let nx = (sx as isize - 1 + dx).div_euclid(SCALE as isize);
                                let ny = (sy as isize - 1 + dy).div_euclid(SCALE as isize);
                                lit(c, nx, ny)
                            })
                        });
                        if near {
                            px[y * SIZE + x] = 0;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(scene: Scene, index: u32, label: &str) -> Vec<u16> {
        render(&Frame {
            scene,
            index,
            count: 5,
            seed: 42,
            max: 4095,
            label,
            tag: "CT",
        })
    }

    #[test]
    fn slices_differ_and_text_is_burned_in() {
        let s = Scene::Section {
            contrast: SectionContrast::Ct,
        };
        let a = frame(s, 0, "S1 I1");
        let b = frame(s, 3, "S1 I4");
        assert_eq!(a.len(), SIZE * SIZE);
        assert_ne!(a, b);
        // The label area holds both white glyph pixels and their black outline.
        let area: Vec<u16> = (4..18)
            .flat_map(|y| (4..30).map(move |x| (x, y)))
            .map(|(x, y)| a[y * SIZE + x])
            .collect();
        assert!(area.contains(&4095));
        assert!(area.contains(&0));
    }

    #[test]
    fn the_marker_is_a_white_ring_around_a_black_centre() {
        for scene in [
            Scene::Section {
                contrast: SectionContrast::Ct,
            },
            Scene::Radiograph { lateral: false },
            Scene::Ultrasound,
        ] {
            let px = frame(scene, 2, "S1 I3");
            let at = |x: usize, y: usize| px[y * SIZE + x];
            assert_eq!(at(64, 64), 0, "{scene:?}");
            for (x, y) in [(58, 64), (70, 64), (64, 58), (64, 70)] {
                assert_eq!(at(x, y), 4095, "{scene:?} at {x},{y}");
            }
        }
    }

    #[test]
    fn values_stay_in_range() {
        for scene in [
            Scene::Radiograph { lateral: false },
            Scene::Radiograph { lateral: true },
            Scene::Ultrasound,
            Scene::Mammogram { left: true },
        ] {
            let px = render(&Frame {
                scene,
                index: 1,
                count: 3,
                seed: 7,
                max: 255,
                label: "1",
                tag: "X",
            });
            assert!(px.iter().all(|&v| v <= 255));
            assert!(px.iter().any(|&v| v > 60), "{scene:?} is too dark");
        }
    }
}
