//! `byline-text/v1`: the text a reader sees, made stable across renderings.
//!
//! The same article must produce the same bytes whether it is read as Markdown source, as a
//! rendered HTML page or as plain text, so that a signature made over one verifies over the
//! others. The algorithm is specified for other implementers in `docs/canonicalization.md`;
//! this module is its reference implementation. It is versioned: a change here is a new
//! algorithm name, never an edit of v1.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use html5ever::tendril::TendrilSink;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::core::constants::DEFAULT_MAX_ARTICLE_BYTES;

/// Elements that end a paragraph where they open and where they close (DESIGN.md, step 2).
const BLOCK_ELEMENTS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Elements whose whole subtree is invisible to a reader and so never part of the text.
const SKIPPED_ELEMENTS: &[&str] = &["head", "script", "style", "template", "noscript"];

/// The attribute that marks the article root explicitly.
pub const ROOT_ATTRIBUTE: &str = "data-byline-root";
/// The attribute that marks the element showing the byline on the page.
pub const DISPLAYED_BYLINE_ATTRIBUTE: &str = "data-byline";
/// The attribute that labels a block's authorship class on an HTML page.
pub const AUTHORSHIP_ATTRIBUTE: &str = "data-byline-authorship";

/// How an article's bytes are to be read; decides which extraction step applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `text/plain`: paragraphs end at blank lines.
    Plain,
    /// `text/markdown`: CommonMark with GFM tables and strikethrough, then read as HTML.
    Markdown,
    /// `text/html`: parsed as a browser would, from the article root.
    Html,
}

impl MediaType {
    /// The IANA media type string, as written in requests and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Plain => "text/plain",
            MediaType::Markdown => "text/markdown",
            MediaType::Html => "text/html",
        }
    }

    /// The media type implied by a file name's extension, so that users rarely need to say it.
    pub fn from_file_name(name: &str) -> Option<MediaType> {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.')?.1;
        match ext {
            "md" | "markdown" => Some(MediaType::Markdown),
            "html" | "htm" => Some(MediaType::Html),
            "txt" | "text" => Some(MediaType::Plain),
            _ => None,
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaType {
    type Err = CanonicalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Parameters such as `; charset=utf-8` do not change the algorithm.
        let base = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "text/plain" => Ok(MediaType::Plain),
            "text/markdown" => Ok(MediaType::Markdown),
            "text/html" => Ok(MediaType::Html),
            _ => Err(CanonicalError::UnknownMediaType { got: s.to_string() }),
        }
    }
}

/// Why an article could not be canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// The bytes are not UTF-8; the offset lets the user find the bad byte with a hex editor.
    #[error("invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 {
        /// Zero-based offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },
    /// The media type is not one that `byline-text/v1` defines.
    #[error("unknown media type {got:?}: expected text/plain, text/markdown or text/html")]
    UnknownMediaType {
        /// The media type that was given.
        got: String,
    },
    /// The page has more than one candidate article root, so the signed text would be a guess.
    #[error("ambiguous article root: {detail}; mark the article element with data-byline-root")]
    AmbiguousRoot {
        /// Which candidates were found.
        detail: String,
    },
    /// The page nests elements deeper than a browser would build (a parser-cost attack).
    #[error("the page nests elements more than {limit} levels deep")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// The article is larger than the configured limit.
    #[error("article is {got} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The article's size.
        got: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// The result of canonicalization: the canonical text and what was learned on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The canonical text: paragraphs joined by `\n`, no trailing newline.
    pub text: String,
    /// For each paragraph, the `data-byline-authorship` label of its innermost marked ancestor
    /// (HTML and Markdown with raw HTML only; plain text has none).
    pub paragraph_labels: Vec<Option<String>>,
    /// The visible text of the first element marked `data-byline`, if the page has one.
    pub displayed_byline: Option<String>,
}

impl Canonical {
    /// The canonical paragraphs, in order.
    pub fn paragraphs(&self) -> impl Iterator<Item = &str> {
        // The canonical text never holds an empty paragraph, so an empty text has none.
        self.text.split('\n').filter(|p| !p.is_empty())
    }
}

/// Canonicalizes an article with the default size limit.
pub fn canonicalize(bytes: &[u8], media_type: MediaType) -> Result<Canonical, CanonicalError> {
    canonicalize_with_limit(bytes, media_type, DEFAULT_MAX_ARTICLE_BYTES)
}

/// Canonicalizes an article, refusing inputs over `limit` bytes.
pub fn canonicalize_with_limit(
    bytes: &[u8],
    media_type: MediaType,
    limit: usize,
) -> Result<Canonical, CanonicalError> {
    if bytes.len() > limit {
        return Err(CanonicalError::TooLarge {
            got: bytes.len(),
            limit,
        });
    }
    let text = decode_utf8(bytes)?;
    match media_type {
        MediaType::Plain => Ok(plain_text(text)),
        MediaType::Markdown => {
            let html = render_markdown(strip_front_matter(text));
            html_text(&html)
        }
        MediaType::Html => html_text(text),
    }
}

/// Step 1: UTF-8 decoding, dropping one leading byte order mark.
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, CanonicalError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CanonicalError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Removes a YAML front matter block (`---` … `---` or `...`) from the start of Markdown.
///
/// A block that never closes is not front matter and is left in place, as CommonMark would.
pub fn strip_front_matter(text: &str) -> &str {
    front_matter_len(text).map_or(text, |len| &text[len..])
}

/// The byte length of the front matter block at the start of `text`, if there is one.
pub fn front_matter_len(text: &str) -> Option<usize> {
    let first_end = line_end(text, 0);
    if trim_eol(&text[..first_end]) != "---" {
        return None;
    }
    let mut pos = first_end;
    while pos < text.len() {
        let end = line_end(text, pos);
        let line = trim_eol(&text[pos..end]);
        if line == "---" || line == "..." {
            return Some(end);
        }
        pos = end;
    }
    None
}

/// The index just past the line starting at `start` (including its `\n`, `\r\n` or `\r`).
fn line_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => return i + 1,
            b'\r' => {
                return if bytes.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

fn trim_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn render_markdown(source: &str) -> String {
    let options =
        pulldown_cmark::Options::ENABLE_TABLES | pulldown_cmark::Options::ENABLE_STRIKETHROUGH;
    let parser = pulldown_cmark::Parser::new_ext(source, options);
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

/// Steps 3–5 for plain text: paragraphs end at blank lines.
fn plain_text(text: &str) -> Canonical {
    let composed = nfc(text);
    let normalized = normalize_newlines(&composed);
    let mut out = ParagraphSink::default();
    for line in normalized.split('\n') {
        if line.chars().all(char::is_whitespace) {
            out.flush();
        } else {
            out.push_str(line);
            out.push_str("\n");
        }
    }
    out.flush();
    out.finish(None)
}

/// `text` with `\r\n` and lone `\r` as `\n`; borrowed when it has no `\r`, as most text has.
fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` in Unicode Normalization Form C. The quick check (UAX #15) answers "yes" for almost
/// all text without normalizing it, and then `text` is already NFC and is borrowed; only a
/// "maybe" or "no" pays for the full normalization, which was most of the cost of
/// canonicalizing (about 40 MiB/s when every paragraph was normalized twice).
fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// Collects paragraph text and applies NFC, white-space folding and trimming on flush.
#[derive(Default)]
struct ParagraphSink {
    current: String,
    current_label: Option<String>,
    text: String,
    labels: Vec<Option<String>>,
}

impl ParagraphSink {
    fn push_str(&mut self, s: &str) {
        self.current.push_str(s);
    }

    fn push_labelled(&mut self, s: &str, label: Option<&String>) {
        if self.current_label.is_none() && !s.chars().all(char::is_whitespace) {
            self.current_label = label.cloned();
        }
        self.current.push_str(s);
    }

    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let normalized = nfc(&self.current);
        let normalized = normalize_newlines(&normalized);
        let mut folded = String::with_capacity(normalized.len());
        let mut pending_space = false;
        for ch in normalized.chars() {
            if ch.is_whitespace() {
                pending_space = !folded.is_empty();
            } else {
                if pending_space {
                    folded.push(' ');
                    pending_space = false;
                }
                folded.push(ch);
            }
        }
        if !folded.is_empty() {
            if !self.text.is_empty() {
                self.text.push('\n');
            }
            self.text.push_str(&folded);
            self.labels.push(self.current_label.take());
        }
        self.current.clear();
        self.current_label = None;
    }

    fn finish(mut self, displayed_byline: Option<String>) -> Canonical {
        self.flush();
        Canonical {
            text: self.text,
            paragraph_labels: self.labels,
            displayed_byline,
        }
    }
}

fn element_name(node: &Handle) -> Option<&str> {
    match &node.data {
        NodeData::Element { name, .. } => Some(&*name.local),
        _ => None,
    }
}

fn attribute(node: &Handle, attr: &str) -> Option<String> {
    match &node.data {
        NodeData::Element { attrs, .. } => attrs
            .borrow()
            .iter()
            .find(|a| &*a.name.local == attr)
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

fn has_attribute(node: &Handle, attr: &str) -> bool {
    match &node.data {
        NodeData::Element { attrs, .. } => attrs.borrow().iter().any(|a| &*a.name.local == attr),
        _ => false,
    }
}

/// Every element of the document in tree order, iteratively (hostile pages nest deeply).
fn elements_in_order(document: &Handle) -> Vec<Handle> {
    let mut out = Vec::new();
    let mut stack = vec![document.clone()];
    while let Some(node) = stack.pop() {
        if matches!(node.data, NodeData::Element { .. }) {
            out.push(node.clone());
        }
        let children = node.children.borrow();
        stack.extend(children.iter().rev().cloned());
    }
    out
}

/// Chooses the article root as DESIGN.md says: marked root, else the only article, else body.
fn article_root(document: &Handle) -> Result<Option<Handle>, CanonicalError> {
    let elements = elements_in_order(document);
    let marked: Vec<&Handle> = elements
        .iter()
        .filter(|e| has_attribute(e, ROOT_ATTRIBUTE))
        .collect();
    match marked.len() {
        0 => {}
        1 => return Ok(Some(marked[0].clone())),
        n => {
            return Err(CanonicalError::AmbiguousRoot {
                detail: format!("{n} elements carry {ROOT_ATTRIBUTE}"),
            })
        }
    }
    let articles: Vec<&Handle> = elements
        .iter()
        .filter(|e| element_name(e) == Some("article"))
        .collect();
    match articles.len() {
        0 => {}
        1 => return Ok(Some(articles[0].clone())),
        n => {
            return Err(CanonicalError::AmbiguousRoot {
                detail: format!("{n} <article> elements and none carries {ROOT_ATTRIBUTE}"),
            })
        }
    }
    Ok(elements
        .iter()
        .find(|e| element_name(e) == Some("body"))
        .cloned())
}

fn parse_html(html: &str) -> RcDom {
    html5ever::parse_document(RcDom::default(), Default::default()).one(html)
}

/// The deepest element nesting accepted. HTML tree construction costs grow with the square of
/// the depth, and browsers themselves flatten trees deeper than a few hundred levels.
pub const MAX_HTML_DEPTH: usize = 1024;

/// Elements whose end tag may be implied or that have none; they are not counted by the depth
/// estimate, which would otherwise overcount honest pages that leave `<p>` or `<li>` open.
const UNCOUNTED_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody", "thead",
    "tfoot", "rb", "rt", "rp", "rtc", "colgroup", "caption", "html", "head", "body",
];

/// Elements whose content is raw text, skipped by the depth estimate up to their end tag.
const RAW_TEXT_ELEMENTS: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
];

/// An estimate of element nesting, so that a hostile page is refused before the (quadratic in
/// depth) tree construction runs. It keeps a simplified stack of open elements: every start tag
/// of a counted element opens one (`<div/>` too, as HTML ignores the slash on such elements),
/// an end tag closes up to its matching open element and is ignored when none is open, and
/// raw-text elements are skipped whole. It stops counting once past `limit`.
fn estimated_depth(html: &str, limit: usize) -> usize {
    let b = html.as_bytes();
    let mut i = 0usize;
    let mut stack: Vec<String> = Vec::new();
    let mut max = 0usize;
    while let Some(offset) = b[i..].iter().position(|&c| c == b'<') {
        i += offset + 1;
        if b[i..].starts_with(b"!--") {
            i = find_from(b, i + 3, b"-->").map_or(b.len(), |p| p + 3);
            continue;
        }
        let closing = b.get(i) == Some(&b'/');
        let name_start = if closing { i + 1 } else { i };
        let name_len = b[name_start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || !b[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        let gt = find_from(b, name_start + name_len, b">").unwrap_or(b.len());
        i = gt.min(b.len());
        if UNCOUNTED_ELEMENTS.contains(&name.as_str()) {
            continue;
        }
        if closing {
            if let Some(pos) = stack.iter().rposition(|open| *open == name) {
                stack.truncate(pos);
            }
        } else if RAW_TEXT_ELEMENTS.contains(&name.as_str()) {
            let end_tag = format!("</{name}");
            i = find_from_ci(b, i, end_tag.as_bytes()).map_or(b.len(), |p| p + end_tag.len());
        } else {
            stack.push(name);
            max = max.max(stack.len());
            if max > limit {
                return max;
            }
        }
    }
    max
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_from_ci(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Steps 2–5 for HTML: parse, choose the root, walk its visible text.
fn html_text(html: &str) -> Result<Canonical, CanonicalError> {
    if estimated_depth(html, MAX_HTML_DEPTH) > MAX_HTML_DEPTH {
        return Err(CanonicalError::TooDeep {
            limit: MAX_HTML_DEPTH,
        });
    }
    let dom = parse_html(html);
    let root = article_root(&dom.document)?;
    let displayed = displayed_byline(&dom.document);
    let mut sink = ParagraphSink::default();
    if let Some(root) = root.filter(|r| !inside_skipped(r)) {
        walk_visible_text(&root, &mut sink);
    }
    Ok(sink.finish(displayed))
}

/// Whether an element sits inside a skipped element (a hidden ancestor hides the root too).
fn inside_skipped(node: &Handle) -> bool {
    let mut current = parent_of(node);
    while let Some(parent) = current {
        let name = element_name(&parent).unwrap_or("");
        if SKIPPED_ELEMENTS.contains(&name) || has_attribute(&parent, "hidden") {
            return true;
        }
        current = parent_of(&parent);
    }
    false
}

fn parent_of(node: &Handle) -> Option<Handle> {
    let weak = node.parent.take();
    let parent = weak.as_ref().and_then(|w| w.upgrade());
    node.parent.set(weak);
    parent
}

enum Step {
    Enter(Handle),
    Leave { block: bool, labelled: bool },
}

/// Appends the visible text under `root` to `sink`, ending paragraphs at block boundaries.
fn walk_visible_text(root: &Handle, sink: &mut ParagraphSink) {
    let mut labels: Vec<String> = Vec::new();
    let mut stack = vec![Step::Enter(root.clone())];
    while let Some(step) = stack.pop() {
        let node = match step {
            Step::Leave { block, labelled } => {
                if block {
                    sink.flush();
                }
                if labelled {
                    labels.pop();
                }
                continue;
            }
            Step::Enter(node) => node,
        };
        match &node.data {
            NodeData::Text { contents } => {
                sink.push_labelled(&contents.borrow(), labels.last());
            }
            NodeData::Element { .. } => {
                let name = element_name(&node).unwrap_or("");
                if SKIPPED_ELEMENTS.contains(&name) || has_attribute(&node, "hidden") {
                    continue;
                }
                if name == "br" {
                    sink.push_str(" ");
                    continue;
                }
                let block = BLOCK_ELEMENTS.contains(&name);
                if block {
                    sink.flush();
                }
                let label = attribute(&node, AUTHORSHIP_ATTRIBUTE);
                let labelled = label.is_some();
                if let Some(label) = label {
                    labels.push(label.trim().to_string());
                }
                stack.push(Step::Leave { block, labelled });
                let children = node.children.borrow();
                stack.extend(children.iter().rev().cloned().map(Step::Enter));
            }
            _ => {}
        }
    }
}

/// Folds a string the way a paragraph is folded (NFC, white space runs to one space, trimmed),
/// so that a signed byline and a displayed one compare as a reader sees them.
pub fn fold_like_paragraph(text: &str) -> String {
    let mut sink = ParagraphSink::default();
    sink.push_str(text);
    sink.finish(None).text.replace('\n', " ")
}

/// The visible text of the first element marked `data-byline`, folded like a paragraph.
fn displayed_byline(document: &Handle) -> Option<String> {
    let element = elements_in_order(document)
        .into_iter()
        .find(|e| has_attribute(e, DISPLAYED_BYLINE_ATTRIBUTE))?;
    let mut sink = ParagraphSink::default();
    walk_visible_text(&element, &mut sink);
    let text = sink.finish(None).text.replace('\n', " ");
    Some(text)
}

/// What kind of invisible character a verifier found in the displayed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvisibleKind {
    /// A bidirectional control, which can reorder what a reader sees.
    Bidi,
    /// A zero-width or other invisible format character, or a variation selector.
    Invisible,
}

/// One invisible character in the canonical text, located so a reader can find it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvisibleChar {
    /// The code point, as `U+XXXX`.
    pub code_point: String,
    /// Zero-based index of the paragraph that holds it.
    pub paragraph: usize,
    /// Zero-based character (code point) offset within that paragraph.
    pub offset: usize,
    /// Its kind.
    pub kind: InvisibleKind,
}

/// Whether a character is a bidi control (embedding, override, isolate, or mark).
pub fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether a character is invisible when displayed (zero-width, joiner, word joiner,
/// variation selector, TAG character, soft hyphen, BOM).
pub fn is_invisible_format(ch: char) -> bool {
    matches!(ch,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Lists the bidi controls and invisible characters a reader cannot see in `text`, so that a
/// verdict can warn about them even when the signature matches.
pub fn invisible_characters(text: &str) -> Vec<InvisibleChar> {
    let mut found = Vec::new();
    for (paragraph, line) in text.split('\n').enumerate() {
        for (offset, ch) in line.chars().enumerate() {
            let kind = if is_bidi_control(ch) {
                InvisibleKind::Bidi
            } else if is_invisible_format(ch) {
                InvisibleKind::Invisible
            } else {
                continue;
            };
            found.push(InvisibleChar {
                code_point: format!("U+{:04X}", ch as u32),
                paragraph,
                offset,
                kind,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str, media: MediaType) -> String {
        canonicalize(input.as_bytes(), media).unwrap().text
    }

    #[test]
    fn plain_paragraphs_fold_white_space() {
        let got = canon(
            "  One\tline\r\nsame para \r\n \u{a0}\r\nNext\u{3000}para\n\n\n",
            MediaType::Plain,
        );
        assert_eq!(got, "One line same para\nNext para");
    }

    #[test]
    fn invalid_utf8_names_offset() {
        let err = canonicalize(b"ab\xffcd", MediaType::Plain).unwrap_err();
        assert_eq!(err, CanonicalError::InvalidUtf8 { offset: 2 });
        assert_eq!(err.to_string(), "invalid UTF-8 at byte offset 2");
    }

    proptest::proptest! {
        /// The fast paths change no output: NFC by the quick check equals the full
        /// normalization, and newline folding equals the plain replacement, for any text
        /// (combining marks, Hangul, lone `\r` and all).
        #[test]
        fn fast_paths_equal_the_full_normalization(text in "(\\PC|[\r\n\u{300}-\u{36f}\u{1100}-\u{11ff}\u{ac00}-\u{ac20}])*") {
            let full: String = text.nfc().collect();
            let fast = nfc(&text);
            proptest::prop_assert_eq!(fast.as_ref(), full.as_str());
            let replaced = text.replace("\r\n", "\n").replace('\r', "\n");
            let folded = normalize_newlines(&text);
            proptest::prop_assert_eq!(folded.as_ref(), replaced.as_str());
        }
    }

    #[test]
    fn bom_dropped_and_nfc_applied() {
        let got = canon("\u{feff}Cafe\u{301}", MediaType::Plain);
        assert_eq!(got, "Caf\u{e9}");
    }

    #[test]
    fn html_root_selection() {
        let page = "<html><body><nav>Menu</nav><article><h1>T</h1><p>A <em>b</em>\n c</p></article><footer>F</footer></body></html>";
        assert_eq!(canon(page, MediaType::Html), "T\nA b c");
        let marked = "<body><article>x</article><div data-byline-root><p>y</p></div></body>";
        assert_eq!(canon(marked, MediaType::Html), "y");
        let two = "<body><article>x</article><article>y</article></body>";
        assert!(matches!(
            canonicalize(two.as_bytes(), MediaType::Html),
            Err(CanonicalError::AmbiguousRoot { .. })
        ));
    }

    #[test]
    fn markdown_matches_equivalent_html() {
        let md = "---\ntitle: x\n---\n# Heading\n\nSome *emphasis* and [a link](http://x).\n\n- one\n- two\n";
        let html = "<article><h1>Heading</h1><p>Some <em>emphasis</em> and <a href=x>a link</a>.</p><ul><li>one<li>two</ul></article>";
        assert_eq!(canon(md, MediaType::Markdown), canon(html, MediaType::Html));
    }

    #[test]
    fn hidden_and_skipped_elements_are_not_text() {
        let page = "<body><p>a<span hidden>secret</span>b</p><script>x()</script><noscript>n</noscript><template>t</template></body>";
        assert_eq!(canon(page, MediaType::Html), "ab");
        let hidden_root = "<body><p>shown</p><div hidden><article>not shown</article></div></body>";
        assert_eq!(canon(hidden_root, MediaType::Html), "");
    }

    #[test]
    fn labels_and_displayed_byline_are_reported() {
        let page = "<article><p data-byline>By  AI</p><div data-byline-authorship=\"ai-generated\"><p>x</p></div><p>y</p></article>";
        let c = canonicalize(page.as_bytes(), MediaType::Html).unwrap();
        assert_eq!(c.text, "By AI\nx\ny");
        assert_eq!(
            c.paragraph_labels,
            vec![None, Some("ai-generated".into()), None]
        );
        assert_eq!(c.displayed_byline.as_deref(), Some("By AI"));
    }

    #[test]
    fn deep_nesting_is_refused_quickly_and_moderate_nesting_works() {
        let page = "<div>".repeat(100_000) + "deep";
        assert_eq!(
            canonicalize(page.as_bytes(), MediaType::Html).unwrap_err(),
            CanonicalError::TooDeep {
                limit: MAX_HTML_DEPTH
            }
        );
        let page = "<div>".repeat(MAX_HTML_DEPTH - 10) + "deep";
        assert_eq!(canon(&page, MediaType::Html), "deep");
        // Unclosed paragraphs and list items are not nesting.
        let page = "<p>x".repeat(20_000);
        assert_eq!(
            canonicalize(page.as_bytes(), MediaType::Html)
                .unwrap()
                .paragraphs()
                .count(),
            20_000
        );
        let page = "<script>".to_string() + &"<div>".repeat(5000) + "</script><p>ok";
        assert_eq!(canon(&page, MediaType::Html), "ok");
        // Self-closing syntax and stray end tags do not hide nesting.
        for page in [
            "<div/>".repeat(5000),
            "<b></i>".repeat(5000),
            "<div></script>".repeat(5000),
        ] {
            assert_eq!(
                canonicalize(page.as_bytes(), MediaType::Html).unwrap_err(),
                CanonicalError::TooDeep {
                    limit: MAX_HTML_DEPTH
                },
                "{}",
                &page[..20]
            );
        }
        // Many siblings are not nesting.
        let page = "<div>x</div>".repeat(20_000);
        assert!(canonicalize(page.as_bytes(), MediaType::Html).is_ok());
    }

    #[test]
    fn invisible_characters_are_located() {
        let found = invisible_characters("ab\u{200b}c\nx\u{202e}y");
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].paragraph, found[0].offset, found[0].kind),
            (0, 2, InvisibleKind::Invisible)
        );
        assert_eq!(
            (found[1].paragraph, found[1].offset, found[1].kind),
            (1, 1, InvisibleKind::Bidi)
        );
    }
}
