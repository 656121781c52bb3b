//! Embedding a bundle in the article it describes, and taking it out again byte for byte.
//!
//! The `exact` binding is the digest of the article as signed, less an embedded bundle block;
//! so an embedded block must come out leaving exactly the bytes that were signed. Embedding
//! adds one block; [`strip_embedded`] removes exactly that block:
//! - HTML: `<script type="application/vnd.byline.bundle.v1+json">JSON</script>` plus one LF,
//!   inserted before `</head>` (else before `<body`, else at the start);
//! - Markdown: a line `byline-bundle: JSON` plus LF as the first line of the front matter,
//!   which is created (`---` LF, the line, `---` LF) when the article has none.

use crate::core::bundle::Bundle;
use crate::core::canonical::{front_matter_len, MediaType};
use crate::core::constants::{BUNDLE_MEDIA_TYPE_V1, FRONT_MATTER_BUNDLE_KEY};

/// Why a bundle could not be embedded or extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// Plain text has nowhere to hide a block; a sidecar file is the way.
    #[error("a text/plain article cannot carry an embedded bundle; keep the sidecar file instead")]
    PlainText,
    /// The article already carries a bundle.
    #[error("the article already carries an embedded bundle; extract it first")]
    AlreadyEmbedded,
    /// More than one embedded bundle block was found.
    #[error("the article carries {count} embedded bundles; exactly one is allowed")]
    Several {
        /// How many blocks were found.
        count: usize,
    },
    /// A block opens and never closes.
    #[error("the embedded bundle block is not closed ({missing} missing)")]
    Unclosed {
        /// What was expected.
        missing: &'static str,
    },
    /// Front matter with lone CR line ends, where the block's line could not be told apart.
    #[error("the article's front matter uses lone CR line ends; convert it to LF or CRLF before embedding")]
    LoneCarriageReturn,
    /// Empty front matter would make the block's removal ambiguous.
    #[error(
        "the article starts with empty front matter; remove it or add a field before embedding"
    )]
    EmptyFrontMatter,
}

fn script_open() -> String {
    format!("<script type=\"{BUNDLE_MEDIA_TYPE_V1}\">")
}

const SCRIPT_CLOSE: &[u8] = b"</script>";

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The article with the bundle embedded.
pub fn embed(
    article: &[u8],
    media_type: MediaType,
    bundle: &Bundle,
) -> Result<Vec<u8>, EmbedError> {
    if strip_embedded(article, media_type)?.1.is_some() {
        return Err(EmbedError::AlreadyEmbedded);
    }
    match media_type {
        MediaType::Plain => Err(EmbedError::PlainText),
        MediaType::Html => {
            // `<` is escaped so that no string in the bundle can close the script element.
            let json = bundle.to_json_compact().replace('<', "\\u003c");
            let block = format!("{}{json}</script>\n", script_open());
            let at = find_ci(article, b"</head")
                .or_else(|| find_ci(article, b"<body"))
                .unwrap_or(0);
            let mut out = Vec::with_capacity(article.len() + block.len());
            out.extend_from_slice(&article[..at]);
            out.extend_from_slice(block.as_bytes());
            out.extend_from_slice(&article[at..]);
            Ok(out)
        }
        MediaType::Markdown => {
            let line = format!("{FRONT_MATTER_BUNDLE_KEY}: {}\n", bundle.to_json_compact());
            let text = String::from_utf8_lossy(article);
            let mut out = Vec::with_capacity(article.len() + line.len() + 8);
            match front_matter_len(&text) {
                Some(_) => {
                    let first = first_line_len(article);
                    if &article[..first] != b"---\n" && &article[..first] != b"---\r\n" {
                        return Err(EmbedError::LoneCarriageReturn);
                    }
                    let rest = &article[first..];
                    let closes_at_once = rest.starts_with(b"---\n")
                        || rest.starts_with(b"---\r\n")
                        || rest.starts_with(b"...\n")
                        || rest.starts_with(b"...\r\n");
                    if closes_at_once {
                        return Err(EmbedError::EmptyFrontMatter);
                    }
                    out.extend_from_slice(&article[..first]);
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(rest);
                }
                None => {
                    out.extend_from_slice(b"---\n");
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"---\n");
                    out.extend_from_slice(article);
                }
            }
            Ok(out)
        }
    }
}

fn first_line_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1)
}

/// Removes an embedded bundle block, if any: returns the article bytes as signed and the
/// block's JSON text.
pub fn strip_embedded(
    article: &[u8],
    media_type: MediaType,
) -> Result<(Vec<u8>, Option<Vec<u8>>), EmbedError> {
    match media_type {
        MediaType::Plain => Ok((article.to_vec(), None)),
        MediaType::Html => strip_html(article),
        MediaType::Markdown => Ok(strip_markdown(article)),
    }
}

fn strip_html(article: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), EmbedError> {
    let open = script_open();
    let starts = find_all(article, open.as_bytes());
    match starts.len() {
        0 => return Ok((article.to_vec(), None)),
        1 => {}
        count => return Err(EmbedError::Several { count }),
    }
    let start = starts[0];
    let json_start = start + open.len();
    let close_rel = find_all(&article[json_start..], SCRIPT_CLOSE)
        .first()
        .copied()
        .ok_or(EmbedError::Unclosed {
            missing: "</script>",
        })?;
    let json_end = json_start + close_rel;
    let mut end = json_end + SCRIPT_CLOSE.len();
    if article.get(end) == Some(&b'\n') {
        end += 1;
    }
    let mut out = Vec::with_capacity(article.len());
    out.extend_from_slice(&article[..start]);
    out.extend_from_slice(&article[end..]);
    Ok((out, Some(article[json_start..json_end].to_vec())))
}

fn strip_markdown(article: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let first = first_line_len(article);
    let first_line = &article[..first];
    if first_line != b"---\n" && first_line != b"---\r\n" {
        return (article.to_vec(), None);
    }
    let prefix = format!("{FRONT_MATTER_BUNDLE_KEY}: ");
    let rest = &article[first..];
    if !rest.starts_with(prefix.as_bytes()) {
        return (article.to_vec(), None);
    }
    let line_len = first_line_len(rest);
    let json = rest[prefix.len()..line_len].trim_ascii_end().to_vec();
    let after = &rest[line_len..];
    let mut out = Vec::with_capacity(article.len());
    if first_line == b"---\n" && after.starts_with(b"---\n") {
        // The whole front matter was created by `embed`.
        out.extend_from_slice(&after[4..]);
    } else {
        out.extend_from_slice(first_line);
        out.extend_from_slice(after);
    }
    (out, Some(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dsse::{Envelope, EnvelopeSignature};

    fn bundle() -> Bundle {
        Bundle::offline(Envelope {
            payload_type: "application/vnd.in-toto+json".into(),
            payload: "PC9zY3JpcHQ+".into(),
            signatures: vec![EnvelopeSignature {
                keyid: None,
                sig: "</script>".into(),
            }],
        })
    }

    #[test]
    fn html_round_trips_byte_for_byte() {
        for page in [
            &b"<html><head><title>x</title></head><body><p>a</p></body></html>"[..],
            b"<body><p>a</p></body>",
            b"<p>no structure</p>\n",
        ] {
            let embedded = embed(page, MediaType::Html, &bundle()).unwrap();
            let (stripped, json) = strip_embedded(&embedded, MediaType::Html).unwrap();
            assert_eq!(stripped, page);
            let back = Bundle::from_json(&json.unwrap()).unwrap();
            assert_eq!(back, bundle());
            assert_eq!(
                embed(&embedded, MediaType::Html, &bundle()).unwrap_err(),
                EmbedError::AlreadyEmbedded
            );
        }
    }

    #[test]
    fn markdown_round_trips_byte_for_byte() {
        for doc in [
            &b"# Title\n\nBody.\n"[..],
            b"---\ntitle: x\n---\n# Title\n",
            b"---\r\ntitle: x\r\n---\r\nBody\r\n",
            b"---\nnot front matter, never closed\n",
            b"",
        ] {
            let embedded = embed(doc, MediaType::Markdown, &bundle()).unwrap();
            let (stripped, json) = strip_embedded(&embedded, MediaType::Markdown).unwrap();
            assert_eq!(stripped, doc, "{}", String::from_utf8_lossy(&embedded));
            assert_eq!(Bundle::from_json(&json.unwrap()).unwrap(), bundle());
        }
        assert_eq!(
            embed(b"---\n---\nx", MediaType::Markdown, &bundle()).unwrap_err(),
            EmbedError::EmptyFrontMatter
        );
        assert_eq!(
            embed(b"---\rtitle: x\r---\rBody", MediaType::Markdown, &bundle()).unwrap_err(),
            EmbedError::LoneCarriageReturn
        );
    }

    #[test]
    fn plain_text_refuses_and_two_blocks_are_an_error() {
        assert_eq!(
            embed(b"x", MediaType::Plain, &bundle()).unwrap_err(),
            EmbedError::PlainText
        );
        let once = embed(b"<p>a</p>", MediaType::Html, &bundle()).unwrap();
        let mut twice = once.clone();
        twice.extend_from_slice(&once);
        assert!(matches!(
            strip_embedded(&twice, MediaType::Html),
            Err(EmbedError::Several { count: 2 })
        ));
    }
}
