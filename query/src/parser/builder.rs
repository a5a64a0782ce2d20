//! pest's pairs → the AST. Spans are shifted into the whole script; values are checked here
//! (numbers that do not fit, clauses given twice, BREADTH with EXACT).

use super::Rule;
use crate::ast::*;
use crate::error::{ErrorKind, QueryError};
use crate::lexer::unescape;
use pest::iterators::Pair;

mod model;

/// Builds the AST from pest's pairs; spans are shifted by `base` into the whole source.
pub(super) struct Builder<'s> {
    pub(super) source: &'s str,
    pub(super) base: usize,
}

type R<T> = Result<T, QueryError>;

impl Builder<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.base + s.start(), self.base + s.end())
    }

    fn err(&self, span: Span, message: impl Into<String>) -> QueryError {
        QueryError::at(self.source, span, ErrorKind::Invalid, message)
    }

    pub(super) fn statement(&self, p: Pair<Rule>) -> R<Statement> {
        let inner = p.into_inner().next().expect("statement alternative");
        match inner.as_rule() {
            Rule::show_stmt => self.show(inner),
            Rule::describe_graph_stmt => {
                let name = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::name)
                    .expect("name");
                Ok(Statement::DescribeGraph {
                    graph: self.text(&name),
                })
            }
            Rule::drop_graph_stmt => {
                let name = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::name)
                    .expect("name");
                Ok(Statement::DropGraph {
                    graph: self.text(&name),
                })
            }
            Rule::describe_stmt => {
                let mut parts = inner
                    .into_inner()
                    .filter(|p| p.as_rule() != Rule::KW_DESCRIBE);
                let target = parts.next().expect("target");
                let by_source = parts.any(|p| p.as_rule() == Rule::by_source);
                match target.as_rule() {
                    Rule::feature if by_source => Ok(Statement::DescribeBySource {
                        feature: self.feature(target)?,
                    }),
                    Rule::feature => Ok(Statement::Describe {
                        feature: self.feature(target)?,
                    }),
                    _ => Ok(Statement::DescribeDictionary {
                        dict: self.text(&target),
                    }),
                }
            }
            Rule::top_stmt => self.top(inner),
            Rule::sample_stmt => self.sample(inner),
            Rule::neighbours_stmt => self.neighbours(inner),
            Rule::features_at_stmt => self.features_at(inner),
            Rule::features_text_stmt => self.features_of_text(inner, false),
            Rule::top_features_text_stmt => self.features_of_text(inner, true),
            Rule::activation_text_stmt => self.activation_on_text(inner),
            Rule::generate_stmt => self.generate(inner),
            Rule::token_effects_stmt => {
                let mut feature = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::feature => feature = Some(self.feature(p)?),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::TokenEffects {
                    feature: feature.expect("feature"),
                    limit,
                })
            }
            Rule::label_stmt => {
                let mut feature = None;
                let mut label = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::feature => feature = Some(self.feature(p)?),
                        Rule::string => label = Some(self.string(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Label {
                    feature: feature.expect("feature"),
                    label: label.expect("label"),
                })
            }
            Rule::search_labels_stmt => {
                let mut text = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::string => text = Some(self.string(p)?),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::SearchLabels {
                    text: text.expect("text"),
                    limit,
                })
            }
            Rule::chains_stmt => self.chains(inner),
            Rule::influence_stmt => {
                let mut on = None;
                let mut graph = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::string => on = Some(self.string(p)?),
                        Rule::name => graph = Some(self.text(&p)),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Influence {
                    on: on.expect("node"),
                    graph: graph.expect("graph"),
                    limit,
                })
            }
            Rule::attribute_stmt => {
                let mut ints = Vec::new();
                let mut token = None;
                let mut graph = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::integer => ints.push(self.integer(p)?),
                        Rule::string => token = Some(self.string(p)?),
                        Rule::name => graph = Some(self.text(&p)),
                        _ => {}
                    }
                }
                let pos = ints.pop().expect("pos");
                let doc = ints.pop().expect("doc");
                Ok(Statement::Attribute {
                    doc,
                    pos,
                    token: token.expect("token"),
                    graph: graph.expect("graph"),
                })
            }
            Rule::set_stmt => {
                let mut name = None;
                let mut feature = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::variable => name = Some(self.text(&p)),
                        Rule::feature => feature = Some(self.feature(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Set {
                    name: name.expect("variable"),
                    feature: feature.expect("feature"),
                })
            }
            Rule::use_stmt => Ok(Statement::Use {
                dict: self.dict_name(inner),
            }),
            r => unreachable!("statement rule {r:?}"),
        }
    }

    fn show(&self, p: Pair<Rule>) -> R<Statement> {
        let what = p
            .into_inner()
            .find(|p| p.as_rule() != Rule::KW_SHOW)
            .expect("show target");
        match what.as_rule() {
            Rule::show_dictionaries => Ok(Statement::ShowDictionaries),
            Rule::show_graphs => Ok(Statement::ShowGraphs),
            Rule::show_labels => {
                let mut limit = None;
                for c in what.into_inner() {
                    if c.as_rule() == Rule::limit_clause {
                        limit = Some(self.clause_int(c)?);
                    }
                }
                Ok(Statement::ShowLabels { limit })
            }
            Rule::show_doc => {
                let mut doc = None;
                let mut positions = false;
                for c in what.into_inner() {
                    match c.as_rule() {
                        Rule::integer => doc = Some(self.integer(c)?),
                        Rule::positions => positions = true,
                        _ => {}
                    }
                }
                Ok(Statement::ShowDoc {
                    doc: doc.expect("doc"),
                    positions,
                })
            }
            r => unreachable!("show rule {r:?}"),
        }
    }

    fn top(&self, p: Pair<Rule>) -> R<Statement> {
        let mut k = None;
        let mut feature = None;
        let mut options = ActivationOptions::default();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::integer => k = Some(self.integer(c)?),
                Rule::feature => feature = Some(self.feature(c)?),
                _ => self.activation_clause(c, &mut options, &mut seen)?,
            }
        }
        Ok(Statement::Top {
            k: k.expect("k"),
            feature: feature.expect("feature"),
            options,
        })
    }

    fn sample(&self, p: Pair<Rule>) -> R<Statement> {
        let mut ints = Vec::new();
        let mut feature = None;
        let mut options = ActivationOptions::default();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::integer => ints.push(self.integer(c)?),
                Rule::feature => feature = Some(self.feature(c)?),
                _ => self.activation_clause(c, &mut options, &mut seen)?,
            }
        }
        let of = ints.pop().expect("of");
        let quantile = ints.pop().expect("quantile");
        let k = ints.pop().expect("k");
        Ok(Statement::Sample {
            k,
            feature: feature.expect("feature"),
            quantile,
            of,
            options,
        })
    }

    fn activation_clause(
        &self,
        c: Pair<Rule>,
        options: &mut ActivationOptions,
        seen: &mut Seen,
    ) -> R<()> {
        let span = self.span(&c);
        match c.as_rule() {
            Rule::context_clause => {
                seen.once(self, "CONTEXT", span)?;
                options.context = Some(self.clause_int(c)?);
            }
            Rule::where_clause => {
                seen.once(self, "WHERE", span)?;
                let e = c
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::expr)
                    .expect("expr");
                options.filter = Some(self.expr(e)?);
            }
            Rule::exclude_special => {
                seen.once(self, "EXCLUDE SPECIAL", span)?;
                options.exclude_special = true;
            }
            Rule::order_clause => {
                seen.once(self, "ORDER BY", span)?;
                options.order = self.order(c);
            }
            _ => {}
        }
        Ok(())
    }

    fn neighbours(&self, p: Pair<Rule>) -> R<Statement> {
        let mut feature = None;
        let mut in_dict = None;
        let mut exact = None;
        let mut breadth = None;
        let mut breadth_clause = None;
        let mut limit = None;
        let mut order = Vec::new();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::feature => feature = Some(self.feature(c)?),
                Rule::in_dict => {
                    seen.once(self, "IN", span)?;
                    in_dict = Some(self.dict_name(c));
                }
                Rule::exact => {
                    seen.once(self, "EXACT", span)?;
                    exact = Some(span);
                }
                Rule::breadth_clause => {
                    seen.once(self, "BREADTH", span)?;
                    breadth_clause = Some(span);
                    breadth = Some(self.clause_int(c)?);
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                Rule::order_clause => {
                    seen.once(self, "ORDER BY", span)?;
                    order = self.order(c);
                }
                _ => {}
            }
        }
        // Exact search scans every feature: a breadth would be ignored, so saying both is a mistake.
        if let (Some(_), Some(span)) = (exact, breadth_clause) {
            return Err(self
                .err(
                    span,
                    "BREADTH cannot be combined with EXACT: exact search scans every feature and has no breadth",
                )
                .with_hint("drop EXACT for an approximate search of that breadth, or drop BREADTH"));
        }
        Ok(Statement::Neighbours {
            feature: feature.expect("feature"),
            in_dict,
            exact: exact.is_some(),
            breadth,
            limit,
            order,
        })
    }

    fn features_at(&self, p: Pair<Rule>) -> R<Statement> {
        let mut ints = Vec::new();
        let mut in_dict = None;
        let mut filter = None;
        let mut limit = None;
        let mut order = Vec::new();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::integer => ints.push(self.integer(c)?),
                Rule::in_dict => {
                    seen.once(self, "IN", span)?;
                    in_dict = Some(self.dict_name(c));
                }
                Rule::where_clause => {
                    seen.once(self, "WHERE", span)?;
                    let e = c
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::expr)
                        .expect("expr");
                    filter = Some(self.expr(e)?);
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                Rule::order_clause => {
                    seen.once(self, "ORDER BY", span)?;
                    order = self.order(c);
                }
                _ => {}
            }
        }
        let pos = ints.pop().expect("pos");
        let doc = ints.pop().expect("doc");
        Ok(Statement::FeaturesAt {
            doc,
            pos,
            in_dict,
            filter,
            limit,
            order,
        })
    }

    fn chains(&self, p: Pair<Rule>) -> R<Statement> {
        let mut to = None;
        let mut graph = None;
        let mut from = None;
        let mut through = None;
        let mut min_length = None;
        let mut max_length = None;
        let mut exclude_errors = false;
        let mut limit = None;
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::string => to = Some(self.string(c)?),
                Rule::name => graph = Some(self.text(&c)),
                Rule::chain_from => {
                    seen.once(self, "FROM", span)?;
                    from = Some(self.clause_string(c)?);
                }
                Rule::chain_through => {
                    seen.once(self, "THROUGH", span)?;
                    through = Some(self.clause_string(c)?);
                }
                Rule::min_length => {
                    seen.once(self, "MIN LENGTH", span)?;
                    min_length = Some(self.clause_int(c)?);
                }
                Rule::max_length => {
                    seen.once(self, "MAX LENGTH", span)?;
                    max_length = Some(self.clause_int(c)?);
                }
                Rule::exclude_errors => {
                    seen.once(self, "EXCLUDE ERRORS", span)?;
                    exclude_errors = true;
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                _ => {}
            }
        }
        Ok(Statement::Chains {
            to: to.expect("to"),
            graph: graph.expect("graph"),
            from,
            through,
            min_length,
            max_length,
            exclude_errors,
            limit,
        })
    }

    fn order(&self, p: Pair<Rule>) -> Vec<OrderKey> {
        p.into_inner()
            .filter(|k| k.as_rule() == Rule::order_key)
            .map(|k| {
                let mut column = None;
                let mut descending = false;
                for c in k.into_inner() {
                    match c.as_rule() {
                        Rule::name => column = Some(self.text(&c)),
                        Rule::desc => descending = true,
                        _ => {}
                    }
                }
                OrderKey {
                    column: column.expect("column"),
                    descending,
                }
            })
            .collect()
    }

    fn expr(&self, p: Pair<Rule>) -> R<Expr> {
        // expr = and_expr (OR and_expr)*
        let mut ors = Vec::new();
        for a in p.into_inner().filter(|c| c.as_rule() == Rule::and_expr) {
            let mut ands = Vec::new();
            for n in a.into_inner().filter(|c| c.as_rule() == Rule::not_expr) {
                ands.push(self.not_expr(n)?);
            }
            ors.push(if ands.len() == 1 {
                ands.pop().expect("one")
            } else {
                Expr::And(ands)
            });
        }
        Ok(if ors.len() == 1 {
            ors.pop().expect("one")
        } else {
            Expr::Or(ors)
        })
    }

    fn not_expr(&self, p: Pair<Rule>) -> R<Expr> {
        let mut nots = 0usize;
        let mut primary = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::not_op => nots += 1,
                Rule::primary => primary = Some(c),
                _ => {}
            }
        }
        let primary = primary.expect("primary");
        let inner = primary.into_inner().next().expect("primary content");
        let e = match inner.as_rule() {
            Rule::expr => self.expr(inner)?,
            Rule::predicate => Expr::Pred(self.predicate(inner)?),
            r => unreachable!("primary {r:?}"),
        };
        // NOT NOT x is x: keep only the parity, so long NOT chains do not nest.
        Ok(if nots % 2 == 1 {
            Expr::Not(Box::new(e))
        } else {
            e
        })
    }

    fn predicate(&self, p: Pair<Rule>) -> R<Predicate> {
        let mut it = p.into_inner();
        let field = it.next().expect("field");
        let field = Spanned::new(field.as_str().to_ascii_lowercase(), self.span(&field));
        let test = it.next().expect("test");
        let rule = test.as_rule();
        let mut negated = false;
        let mut lits = Vec::new();
        let mut op = CmpOp::Eq;
        for c in test.into_inner() {
            match c.as_rule() {
                Rule::not_op => negated = true,
                Rule::literal => lits.push(self.literal(c)?),
                Rule::cmp_op => {
                    op = match c.as_str() {
                        "=" | "==" => CmpOp::Eq,
                        "!=" | "<>" => CmpOp::Ne,
                        "<" => CmpOp::Lt,
                        "<=" => CmpOp::Le,
                        ">" => CmpOp::Gt,
                        _ => CmpOp::Ge,
                    }
                }
                _ => {}
            }
        }
        let test = match rule {
            Rule::compare_pred => Test::Compare(op, lits.pop().expect("literal")),
            Rule::between_pred => {
                let hi = lits.pop().expect("hi");
                let lo = lits.pop().expect("lo");
                Test::Between(lo, hi)
            }
            Rule::in_pred => Test::In(lits),
            Rule::like_pred => Test::Like(lits.pop().expect("pattern")),
            Rule::contains_pred => Test::Contains(lits.pop().expect("text")),
            r => unreachable!("predicate {r:?}"),
        };
        Ok(Predicate {
            field,
            negated,
            test,
        })
    }

    fn literal(&self, p: Pair<Rule>) -> R<Spanned<Literal>> {
        let inner = p.into_inner().next().expect("literal content");
        let span = self.span(&inner);
        match inner.as_rule() {
            Rule::string => Ok(Spanned::new(Literal::Str(self.string(inner)?.value), span)),
            _ => {
                let v: f64 = inner
                    .as_str()
                    .parse()
                    .map_err(|_| self.err(span, "not a number"))?;
                if !v.is_finite() {
                    return Err(self.err(span, "number out of range"));
                }
                Ok(Spanned::new(Literal::Number(v), span))
            }
        }
    }

    fn feature(&self, p: Pair<Rule>) -> R<FeatureArg> {
        let span = self.span(&p);
        let inner = p.into_inner().next().expect("feature content");
        let spec = match inner.as_rule() {
            Rule::dict_feature => {
                let mut it = inner.into_inner();
                let dict = it.next().expect("dict").as_str().to_string();
                let index = self.integer(it.next().expect("index"))?.value;
                FeatureSpec::Explicit { dict, index }
            }
            Rule::bare_feature => {
                let i = inner.into_inner().next().expect("integer");
                FeatureSpec::Bare {
                    index: self.integer(i)?.value,
                }
            }
            Rule::feature_label => {
                let s = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::string)
                    .expect("string");
                FeatureSpec::Label(self.string(s)?.value)
            }
            Rule::variable => FeatureSpec::Variable(inner.as_str().to_string()),
            Rule::string => FeatureSpec::Label(self.string(inner)?.value),
            r => unreachable!("feature {r:?}"),
        };
        Ok(Spanned::new(spec, span))
    }

    /// The dictionary name inside an `IN dict` clause or a USE statement.
    fn dict_name(&self, p: Pair<Rule>) -> Spanned<String> {
        let d = p
            .into_inner()
            .find(|p| p.as_rule() == Rule::dict_name)
            .expect("the grammar puts a dict_name here");
        self.text(&d)
    }

    fn text(&self, p: &Pair<Rule>) -> Spanned<String> {
        Spanned::new(p.as_str().to_string(), self.span(p))
    }

    fn integer(&self, p: Pair<Rule>) -> R<Spanned<u64>> {
        let span = self.span(&p);
        let v: u64 = p.as_str().parse().map_err(|_| {
            self.err(span, format!("number {} is too large", p.as_str()))
                .with_hint(format!("the largest number allowed here is {}", u64::MAX))
        })?;
        Ok(Spanned::new(v, span))
    }

    /// The integer inside a clause such as `LIMIT 10`.
    fn clause_int(&self, p: Pair<Rule>) -> R<Spanned<u64>> {
        let i = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::integer)
            .expect("integer");
        self.integer(i)
    }

    fn clause_string(&self, p: Pair<Rule>) -> R<Spanned<String>> {
        let s = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::string)
            .expect("string");
        self.string(s)
    }

    fn string(&self, p: Pair<Rule>) -> R<Spanned<String>> {
        let span = self.span(&p);
        let raw = p.into_inner().next().map(|i| i.as_str()).unwrap_or("");
        let value = unescape(raw).map_err(|e| self.err(span, e.0))?;
        Ok(Spanned::new(value, span))
    }
}

/// Clauses seen so far in a statement, to reject one given twice.
#[derive(Default)]
struct Seen(Vec<&'static str>);

impl Seen {
    fn once(&mut self, b: &Builder, what: &'static str, span: Span) -> R<()> {
        if self.0.contains(&what) {
            return Err(b.err(span, format!("{what} is given twice")));
        }
        self.0.push(what);
        Ok(())
    }
}
