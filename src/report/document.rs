//! The report as a list of blocks, rendered to Markdown and to one
//! self-contained HTML file (figures as inline SVG, no external resources).

use std::collections::BTreeMap;

/// A table: an id (the HTML anchor), a header and rows of cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub id: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    Table(Table),
    /// A figure by id: `figures/<id>.png` in Markdown, its SVG inline in HTML.
    Figure {
        id: String,
        caption: String,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// Table cells are single-line in Markdown: pipes escaped, newlines as spaces.
fn md_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub fn to_markdown(doc: &Document) -> String {
    let mut out = format!("# {}\n\n", doc.title);
    for block in &doc.blocks {
        match block {
            Block::Heading(text) => out += &format!("## {text}\n\n"),
            Block::Paragraph(text) => out += &format!("{text}\n\n"),
            Block::Table(table) => {
                let header: Vec<String> = table.header.iter().map(|h| md_cell(h)).collect();
                out += &format!("| {} |\n", header.join(" | "));
                out += &format!("|{}\n", " --- |".repeat(header.len()));
                for row in &table.rows {
                    let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
                    out += &format!("| {} |\n", cells.join(" | "));
                }
                out += "\n";
            }
            Block::Figure { id, caption } => {
                out += &format!(
                    "![{id}](figures/{id}.png)\n\n*Figure `{id}`:* {caption} (SVG: [figures/{id}.svg](figures/{id}.svg))\n\n"
                );
            }
        }
    }
    out
}

pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page fits its window at any width: the body never exceeds it, figures
/// scale down (their SVG has a viewBox), long cells (64-hex keys, paths, answers)
/// wrap anywhere, and a table still too wide scrolls inside its own box rather
/// than the page.
const STYLE: &str = "*,*::before,*::after{box-sizing:border-box}\
body{font-family:sans-serif;max-width:1700px;margin:2em auto;padding:0 1em;color:#222}\
.table{max-width:100%;overflow-x:auto;margin:1em 0}\
table{border-collapse:collapse;font-size:90%}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;overflow-wrap:normal}\
figure{margin:1em 0}figure svg{display:block;max-width:100%;height:auto}figcaption{color:#555;max-width:60em}\
code{background:#f6f6f6;padding:0 3px;overflow-wrap:anywhere}";

/// Whether a cell is a number (right-aligned).
fn numeric(text: &str) -> bool {
    !text.is_empty() && text.parse::<f64>().is_ok()
}

/// `svgs` maps a figure id to its SVG document (inlined as is).
pub fn to_html(doc: &Document, svgs: &BTreeMap<String, String>) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape_html(&doc.title),
        escape_html(&doc.title)
    );
    for block in &doc.blocks {
        match block {
            Block::Heading(text) => out += &format!("<h2>{}</h2>\n", escape_html(text)),
            Block::Paragraph(text) => out += &format!("<p>{}</p>\n", inline_code(text)),
            Block::Table(table) => {
                out += &format!(
                    "<div class=\"table\">\n<table id=\"table-{}\">\n<thead><tr>",
                    table.id
                );
                for h in &table.header {
                    out += &format!("<th>{}</th>", escape_html(h));
                }
                out += "</tr></thead>\n<tbody>\n";
                for row in &table.rows {
                    out += "<tr>";
                    for cell in row {
                        let class = if numeric(cell) { " class=\"num\"" } else { "" };
                        out += &format!("<td{class}>{}</td>", escape_html(cell));
                    }
                    out += "</tr>\n";
                }
                out += "</tbody>\n</table>\n</div>\n";
            }
            Block::Figure { id, caption } => {
                let svg = svgs.get(id).map(|s| strip_xml_prolog(s)).unwrap_or("");
                out += &format!(
                    "<figure id=\"fig-{id}\">\n{svg}\n<figcaption><b>Figure <code>{id}</code>.</b> {}</figcaption>\n</figure>\n",
                    escape_html(caption)
                );
            }
        }
    }
    out += "</body>\n</html>\n";
    out
}

/// An SVG inlined in HTML starts at its `<svg` element.
fn strip_xml_prolog(svg: &str) -> &str {
    svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg)
}

/// Escapes a paragraph and turns `code` spans into <code>.
fn inline_code(text: &str) -> String {
    escape_html(text)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            title: "T <1>".into(),
            blocks: vec![
                Block::Heading("H".into()),
                Block::Paragraph("see `a|b`".into()),
                Block::Table(Table {
                    id: "t".into(),
                    header: vec!["name".into(), "value".into()],
                    rows: vec![vec!["x|y\nz".into(), "1.5".into()]],
                }),
                Block::Figure {
                    id: "f".into(),
                    caption: "c".into(),
                },
            ],
        }
    }

    #[test]
    fn markdown_escapes_cells_and_links_figures() {
        let md = to_markdown(&doc());
        assert!(md.contains("| x\\|y z | 1.5 |"), "{md}");
        assert!(md.contains("![f](figures/f.png)"));
    }

    #[test]
    fn html_inlines_svg_and_escapes_text() {
        let svgs = BTreeMap::from([("f".to_string(), "<?xml?>\n<svg id=\"s\"></svg>".to_string())]);
        let html = to_html(&doc(), &svgs);
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
        assert!(html.contains("<figure id=\"fig-f\">\n<svg id=\"s\"></svg>"));
        assert!(!html.contains("<?xml"));
        assert!(html.contains("<td class=\"num\">1.5</td>"));
        assert!(html.contains("<code>a|b</code>"));
    }
}
