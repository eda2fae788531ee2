//! Line charts drawn with plotters, to PNG (an in-memory RGB bitmap encoded by
//! `png`) and SVG. Text is drawn with an embedded DejaVu Sans subset through
//! ab_glyph, so rendering needs no system fonts (headless machines, CI).

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::ReportError;

/// DejaVu Sans, subset to Latin-1 (assets/fonts/LICENSE).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// plotters keeps fonts in a process-wide table; register ours once.
fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Plot {
            figure: "(font)".into(),
            detail: "the embedded font assets/fonts/DejaVuSans-subset.ttf is not a valid font"
                .into(),
        })
    }
}

/// Ten distinguishable colours (matplotlib's tab10); generation g gets `g % 10`.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

pub fn palette(index: usize) -> RGBColor {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Reference lines and curves (the real data): black, then greys.
const REFERENCE: [(u8, u8, u8); 3] = [(0, 0, 0), (110, 110, 110), (170, 170, 170)];

/// A line's colour: a palette slot (generation g gets slot g) or a reference's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Palette(usize),
    Reference(usize),
}

impl Colour {
    fn rgb(self) -> RGBColor {
        match self {
            Colour::Palette(i) => palette(i),
            Colour::Reference(i) => {
                let (r, g, b) = REFERENCE[i.min(REFERENCE.len() - 1)];
                RGBColor(r, g, b)
            }
        }
    }

    /// References are drawn dashed, so they read as "compare with" in print too.
    fn dashed(self) -> bool {
        matches!(self, Colour::Reference(_))
    }
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: Colour,
    pub points: Vec<(f64, f64)>,
    /// An interval around the line, (x, low, high) in x order, drawn as a light
    /// band under it (the 95 % interval over replicate seeds); empty for none.
    pub band: Vec<(f64, f64, f64)>,
    /// Mark each point (for few points, e.g. one per generation).
    pub markers: bool,
}

/// A horizontal reference line across the whole panel (a value measured once,
/// e.g. on the real data), drawn dashed.
#[derive(Clone, Debug)]
pub struct RefLine {
    pub name: String,
    pub colour: Colour,
    pub y: f64,
}

/// One panel: axes, labels, lines.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// x values are log10 of the plotted quantity; ticks show the quantity.
    pub x_log10: bool,
    /// x values are integers (generations, epochs): ticks without decimals.
    pub x_integer: bool,
    pub series: Vec<Series>,
    pub ref_lines: Vec<RefLine>,
}

/// A figure: panels in a grid, `columns` wide, each `panel_size` pixels, under
/// one legend for all panels (a name means the same line in every panel), so no
/// legend ever covers a line.
#[derive(Clone, Debug)]
pub struct FigureSpec {
    pub id: String,
    pub columns: usize,
    /// (width, height) of one panel, in pixels.
    pub panel_size: (u32, u32),
    pub panels: Vec<Chart>,
}

/// A rendered figure.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

/// One entry of the figure's legend.
#[derive(Clone, Debug, PartialEq)]
struct LegendEntry {
    name: String,
    colour: Colour,
    markers: bool,
}

const LEGEND_FONT: u32 = 15;
const LEGEND_ROW: u32 = 26;
const LEGEND_SAMPLE: u32 = 34;

/// Every distinct line of the figure, in order of first appearance.
fn legend_entries(figure: &FigureSpec) -> Vec<LegendEntry> {
    let mut entries: Vec<LegendEntry> = Vec::new();
    for chart in &figure.panels {
        let series = chart.series.iter().map(|s| LegendEntry {
            name: s.name.clone(),
            colour: s.colour,
            markers: s.markers,
        });
        let refs = chart.ref_lines.iter().map(|r| LegendEntry {
            name: r.name.clone(),
            colour: r.colour,
            markers: false,
        });
        for entry in series.chain(refs) {
            if !entries.iter().any(|e| e.name == entry.name) {
                entries.push(entry);
            }
        }
    }
    entries
}

/// A generous estimate of a legend label's width (DejaVu Sans averages about
/// 0.55 em per character), so entries never overlap.
fn text_width(text: &str) -> u32 {
    (text.chars().count() as f64 * LEGEND_FONT as f64 * 0.6).ceil() as u32
}

/// The legend's entries placed left to right, wrapping at `width`:
/// (entry, x, row).
fn legend_layout(entries: &[LegendEntry], width: u32) -> Vec<(&LegendEntry, u32, u32)> {
    let (mut x, mut row) = (16u32, 0u32);
    let mut placed = Vec::new();
    for entry in entries {
        let w = LEGEND_SAMPLE + 8 + text_width(&entry.name) + 28;
        if x > 16 && x + w > width {
            x = 16;
            row += 1;
        }
        placed.push((entry, x, row));
        x += w;
    }
    placed
}

fn legend_height(entries: &[LegendEntry], width: u32) -> u32 {
    match legend_layout(entries, width).last() {
        Some((_, _, rows)) => (rows + 1) * LEGEND_ROW + 12,
        None => 0,
    }
}

/// Renders `figure`: its legend on top, then its panels.
pub fn render(figure: &FigureSpec) -> Result<Rendered, ReportError> {
    ensure_font()?;
    let columns = figure.columns.max(1).min(figure.panels.len().max(1));
    let rows = figure.panels.len().div_ceil(columns).max(1);
    let width = figure.panel_size.0 * columns as u32;
    let entries = legend_entries(figure);
    let legend = legend_height(&entries, width);
    let size = (width, legend + figure.panel_size.1 * rows as u32);
    let plot_err = |detail: String| ReportError::Plot {
        figure: figure.id.clone(),
        detail,
    };

    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw_figure(&root, figure, &entries, legend, rows, columns).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    let png = encode_png(&rgb, size).map_err(|e| plot_err(e.to_string()))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_figure(&root, figure, &entries, legend, rows, columns).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    Ok(Rendered { png, svg })
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    entries: &[LegendEntry],
    legend: u32,
    rows: usize,
    columns: usize,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, panels) = root.split_vertically(legend);
    draw_legend(&top, entries).map_err(|e| e.to_string())?;
    let areas = panels.split_evenly((rows, columns));
    for (panel, area) in figure.panels.iter().zip(areas.iter()) {
        draw_chart(area, panel).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn line_style(colour: Colour) -> ShapeStyle {
    colour
        .rgb()
        .stroke_width(if colour.dashed() { 3 } else { 2 })
}

/// A polyline as dashes of about `dash` pixels with `gap` between them, in pixel
/// space (so dashes look the same on any axis).
fn dashes(points: &[(i32, i32)], dash: f64, gap: f64) -> Vec<Vec<(i32, i32)>> {
    let mut out = Vec::new();
    let mut current: Vec<(i32, i32)> = Vec::new();
    let mut drawing = true;
    let mut left = dash;
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let length = (dx * dx + dy * dy).sqrt();
        let mut t = 0.0;
        while t < length {
            let step = left.min(length - t);
            let at = |u: f64| {
                (
                    a.0 + (dx * u / length).round() as i32,
                    a.1 + (dy * u / length).round() as i32,
                )
            };
            if drawing {
                if current.is_empty() {
                    current.push(at(t));
                }
                current.push(at(t + step));
            }
            t += step;
            left -= step;
            if left <= 1e-9 {
                if drawing {
                    out.push(std::mem::take(&mut current));
                }
                drawing = !drawing;
                left = if drawing { dash } else { gap };
            }
        }
    }
    if current.len() > 1 {
        out.push(current);
    }
    out
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let width = area.dim_in_pixel().0;
    let font = (FAMILY, LEGEND_FONT).into_font().color(&BLACK);
    for (entry, x, row) in legend_layout(entries, width) {
        let (x, y) = (x as i32, (row * LEGEND_ROW + LEGEND_ROW / 2 + 6) as i32);
        let style = line_style(entry.colour);
        let sample = [(x, y), (x + LEGEND_SAMPLE as i32, y)];
        let pieces = if entry.colour.dashed() {
            dashes(&sample, 9.0, 5.0)
        } else {
            vec![sample.to_vec()]
        };
        for piece in pieces {
            area.draw(&PathElement::new(piece, style))?;
        }
        if entry.markers {
            area.draw(&Circle::new(
                (x + LEGEND_SAMPLE as i32 / 2, y),
                4,
                entry.colour.rgb().filled(),
            ))?;
        }
        area.draw(&Text::new(
            entry.name.clone(),
            (x + LEGEND_SAMPLE as i32 + 8, y - LEGEND_FONT as i32 / 2 - 1),
            font.clone(),
        ))?;
    }
    Ok(())
}

/// The data range with a margin; a flat range is widened so it still plots.
fn range(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // A range narrower than the axis labels' three significant digits can
    // tell apart (e.g. one generation's two perplexities) is widened around
    // its middle, so the ticks stay distinct.
    let magnitude = lo.abs().max(hi.abs());
    if hi - lo < 0.02 * magnitude || hi - lo < 1e-12 {
        let middle = (lo + hi) / 2.0;
        let pad = if magnitude > 1e-12 {
            magnitude * 0.1
        } else {
            1.0
        };
        return (middle - pad, middle + pad);
    }
    let pad = (hi - lo) * margin;
    (lo - pad, hi + pad)
}

/// Three significant digits, trailing zeros dropped; exponent form for very
/// large or small magnitudes.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(
        points().map(|p| p.0),
        if chart.x_integer { 0.05 } else { 0.0 },
    );
    let ys = || {
        points()
            .map(|p| p.1)
            .chain(chart.ref_lines.iter().map(|r| r.y))
            .chain(
                chart
                    .series
                    .iter()
                    .flat_map(|s| s.band.iter().flat_map(|b| [b.1, b.2])),
            )
    };
    let (y0, y1) = range(ys(), 0.08);
    let y0 = if ys().all(|y| y >= 0.0) {
        y0.max(0.0)
    } else {
        y0
    };

    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;

    let x_format = |v: &f64| {
        if chart.x_log10 {
            tick(10f64.powf(*v))
        } else if chart.x_integer {
            if (v - v.round()).abs() < 1e-6 {
                format!("{}", v.round() as i64)
            } else {
                String::new()
            }
        } else {
            tick(*v)
        }
    };
    let x_ticks = if chart.x_integer {
        ((x1 - x0).round() as usize + 1).clamp(2, 12)
    } else {
        8
    };
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&x_format)
        .y_label_formatter(&|v: &f64| tick(*v))
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;

    // Dashed lines are cut in pixel space and drawn on the plotting area itself
    // (pixel coordinates relative to its corner).
    let plot = ctx.plotting_area().strip_coord_spec();
    let base = ctx.plotting_area().get_base_pixel();
    let pixel = |ctx: &ChartContext<'_, DB, _>, p: &(f64, f64)| {
        let (x, y) = ctx.backend_coord(p);
        (x - base.0, y - base.1)
    };
    // Bands first, so every line stays visible over them.
    for series in chart.series.iter().filter(|s| s.band.len() >= 2) {
        let outline: Vec<(f64, f64)> = series
            .band
            .iter()
            .map(|b| (b.0, b.2))
            .chain(series.band.iter().rev().map(|b| (b.0, b.1)))
            .collect();
        ctx.draw_series(std::iter::once(Polygon::new(
            outline,
            series.colour.rgb().mix(0.2).filled(),
        )))?;
    }
    for series in &chart.series {
        let style = line_style(series.colour);
        if series.colour.dashed() {
            let pixels: Vec<(i32, i32)> = series.points.iter().map(|p| pixel(&ctx, p)).collect();
            for piece in dashes(&pixels, 9.0, 5.0) {
                plot.draw(&PathElement::new(piece, style))?;
            }
        } else {
            ctx.draw_series(LineSeries::new(series.points.iter().copied(), style))?;
        }
        if series.markers {
            let fill = series.colour.rgb().filled();
            ctx.draw_series(series.points.iter().map(|p| Circle::new(*p, 4, fill)))?;
        }
    }
    for line in &chart.ref_lines {
        let ends = [pixel(&ctx, &(x0, line.y)), pixel(&ctx, &(x1, line.y))];
        for piece in dashes(&ends, 9.0, 5.0) {
            plot.draw(&PathElement::new(piece, line_style(line.colour)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> FigureSpec {
        FigureSpec {
            id: "demo".into(),
            columns: 1,
            panel_size: (400, 300),
            panels: vec![Chart {
                title: "Demo title".into(),
                x_label: "generation".into(),
                y_label: "perplexity".into(),
                x_log10: false,
                x_integer: true,
                series: vec![Series {
                    name: "gen 0".into(),
                    colour: Colour::Palette(0),
                    points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)],
                    band: Vec::new(),
                    markers: true,
                }],
                ref_lines: vec![RefLine {
                    name: "real data".into(),
                    colour: Colour::Reference(0),
                    y: 1.8,
                }],
            }],
        }
    }

    #[test]
    fn near_equal_values_get_distinct_ticks() {
        // One generation's corpus and batch-mean perplexity: 38.35 and 38.40.
        let (lo, hi) = range([38.35, 38.40].into_iter(), 0.08);
        assert!(hi - lo > 7.0, "{lo}..{hi}");
        assert!(lo < 38.35 && hi > 38.40);
        let (lo, hi) = range([10.0, 20.0].into_iter(), 0.1);
        assert!((lo - 9.0).abs() < 1e-9 && (hi - 21.0).abs() < 1e-9);
        assert_eq!(range(std::iter::empty(), 0.1), (0.0, 1.0));
    }

    #[test]
    fn png_has_text_pixels_in_the_title_band() {
        let rendered = render(&demo()).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(rendered.png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        // One legend row above the panel.
        let legend = LEGEND_ROW + 12;
        assert_eq!((info.width, info.height), (400, 300 + legend));
        // The caption is drawn in the panel's top ~30 pixels, centred: dark
        // pixels there mean glyphs were rasterised (no font = blank band).
        let top = legend as usize;
        let dark = (top..top + 30)
            .flat_map(|y| (100..300usize).map(move |x| (y * 400 + x) * 3))
            .filter(|&i| buf[i] < 100 && buf[i + 1] < 100 && buf[i + 2] < 100)
            .count();
        assert!(
            dark > 50,
            "only {dark} dark pixels where the title should be"
        );
        assert!(rendered.svg.contains("Demo title") && rendered.svg.contains("<svg"));
        assert!(rendered.svg.contains("gen 0") && rendered.svg.contains("real data"));
    }

    #[test]
    fn the_legend_wraps_to_the_figure_width_and_lists_each_name_once() {
        let mut figure = demo();
        figure.panels.push(figure.panels[0].clone());
        let entries = legend_entries(&figure);
        assert_eq!(entries.len(), 2, "{entries:?}");
        let layout = legend_layout(&entries, 400);
        assert!(layout.iter().all(|(e, x, _)| x + text_width(&e.name) < 400));
        let many: Vec<LegendEntry> = (0..12)
            .map(|g| LegendEntry {
                name: format!("generation {g}"),
                colour: Colour::Palette(g),
                markers: false,
            })
            .collect();
        let rows = legend_layout(&many, 400).last().unwrap().2;
        assert!(rows >= 3, "{rows}");
        assert_eq!(legend_height(&many, 400), (rows + 1) * LEGEND_ROW + 12);
    }

    #[test]
    fn dashes_cover_a_line_in_pieces() {
        let pieces = dashes(&[(0, 0), (100, 0)], 10.0, 5.0);
        assert_eq!(pieces.len(), 7, "{pieces:?}");
        assert_eq!(pieces[0], [(0, 0), (10, 0)]);
        assert_eq!(pieces[1][0], (15, 0));
    }

    #[test]
    fn ticks_keep_three_significant_digits() {
        assert_eq!(tick(123.456), "123");
        assert_eq!(tick(12.345), "12.3");
        assert_eq!(tick(1.2345), "1.23");
        assert_eq!(tick(0.12345), "0.123");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(10.0), "10");
        assert_eq!(tick(0.05), "0.05");
    }
}
