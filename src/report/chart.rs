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

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
    /// Mark each point (for few points, e.g. one per generation).
    pub markers: bool,
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
}

/// A figure: panels in a grid, `columns` wide.
#[derive(Clone, Debug)]
pub struct FigureSpec {
    pub id: String,
    pub columns: usize,
    pub panels: Vec<Chart>,
}

/// A rendered figure.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub svg: String,
}

/// Renders `figure` with each panel `panel_size` (width, height) pixels.
pub fn render(figure: &FigureSpec, panel_size: (u32, u32)) -> Result<Rendered, ReportError> {
    ensure_font()?;
    let columns = figure.columns.max(1).min(figure.panels.len().max(1));
    let rows = figure.panels.len().div_ceil(columns).max(1);
    let size = (panel_size.0 * columns as u32, panel_size.1 * rows as u32);
    let plot_err = |detail: String| ReportError::Plot {
        figure: figure.id.clone(),
        detail,
    };

    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw_panels(&root, figure, rows, columns).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    let png = encode_png(&rgb, size).map_err(|e| plot_err(e.to_string()))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_panels(&root, figure, rows, columns).map_err(plot_err)?;
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

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &FigureSpec,
    rows: usize,
    columns: usize,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((rows, columns));
    for (panel, area) in figure.panels.iter().zip(areas.iter()) {
        draw_chart(area, panel).map_err(|e| e.to_string())?;
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

/// The corner of the plot with the fewest data points, for the legend.
fn legend_corner(chart: &Chart, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let count = |right: bool, upper: bool| {
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(px, py)| {
                let fx = (px - x.0) / (x.1 - x.0);
                let fy = (py - y.0) / (y.1 - y.0);
                let in_x = if right { fx > 0.45 } else { fx < 0.55 };
                let in_y = if upper { fy > 0.55 } else { fy < 0.45 };
                in_x && in_y
            })
            .count()
    };
    // Ties go to the first corner listed (upper right, as usual).
    corners
        .into_iter()
        .min_by_key(|(_, right, upper)| count(*right, *upper))
        .map(|(pos, _, _)| pos)
        .unwrap_or(SeriesLabelPosition::UpperRight)
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
    let (y0, y1) = range(points().map(|p| p.1), 0.08);
    let y0 = if points().all(|p| p.1 >= 0.0) {
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

    for series in &chart.series {
        let colour = palette(series.colour);
        let style = colour.stroke_width(2);
        ctx.draw_series(LineSeries::new(series.points.iter().copied(), style))?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        if series.markers {
            ctx.draw_series(
                series
                    .points
                    .iter()
                    .map(|p| Circle::new(*p, 4, colour.filled())),
            )?;
        }
    }
    if !chart.series.is_empty() {
        ctx.configure_series_labels()
            .position(legend_corner(chart, (x0, x1), (y0, y1)))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 13))
            .draw()?;
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
            panels: vec![Chart {
                title: "Demo title".into(),
                x_label: "generation".into(),
                y_label: "perplexity".into(),
                x_log10: false,
                x_integer: true,
                series: vec![Series {
                    name: "gen 0".into(),
                    colour: 0,
                    points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)],
                    markers: true,
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
        let rendered = render(&demo(), (400, 300)).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(rendered.png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (400, 300));
        // The caption is drawn in the top ~30 pixels, centred: dark pixels
        // there mean glyphs were rasterised (no font = blank band).
        let dark = (0..30usize)
            .flat_map(|y| (100..300usize).map(move |x| (y * 400 + x) * 3))
            .filter(|&i| buf[i] < 100 && buf[i + 1] < 100 && buf[i + 2] < 100)
            .count();
        assert!(
            dark > 50,
            "only {dark} dark pixels where the title should be"
        );
        assert!(rendered.svg.contains("Demo title") && rendered.svg.contains("<svg"));
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
