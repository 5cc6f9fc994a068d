//! Plain-words explanations of PubGrub's derivation tree.

use pep440_rs::Version;
use pubgrub::{DefaultStringReporter, DerivationTree, External, Ranges, Reporter};

use super::provider::{Pkg, Unusable};

/// The derivation tree of a failed resolution.
pub type Tree = DerivationTree<Pkg, Ranges<Version>, Unusable>;

/// The explanation, one sentence per line, without the virtual root's and targets' versions.
pub fn explain(tree: &Tree) -> String {
    let text = DefaultStringReporter::report(tree);
    // The root and targets carry a placeholder version `0` that means nothing to a reader.
    let text = text
        .replace("the spec 0 ", "the spec ")
        .replace("the spec 0,", "the spec,");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("target `") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[8..].find('`') else {
            break;
        };
        let name_end = 8 + end + 1;
        out.push_str(&rest[..name_end]);
        rest = &rest[name_end..];
        if let Some(after) = rest.strip_prefix(" 0")
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
        {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The newest version the tree marks unusable (no wheel, sdist only), if any.
pub fn unusable(tree: &Tree) -> Option<(String, Version, Unusable)> {
    let mut found: Vec<(String, Version, Unusable)> = Vec::new();
    collect(tree, &mut found);
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    found.into_iter().next()
}

fn collect(tree: &Tree, out: &mut Vec<(String, Version, Unusable)>) {
    match tree {
        DerivationTree::External(External::Custom(pkg, range, reason)) => {
            let (Pkg::Dist(name) | Pkg::Extra(name, _)) = pkg else {
                return;
            };
            if matches!(reason, Unusable::Python { .. }) {
                return;
            }
            if let Some(v) = range.as_singleton() {
                out.push((name.clone(), v.clone(), reason.clone()));
            }
        }
        DerivationTree::External(_) => {}
        DerivationTree::Derived(d) => {
            collect(&d.cause1, out);
            collect(&d.cause2, out);
        }
    }
}
