//! The attempt loop of a routed request, as a sans-IO state machine: which model to call next,
//! whether to wait and call it again, fall back to the next one, deliver an answer or give up.
//!
//! The machine owns the plan ([`fallback::plan`]: the route's models, each with the reason it
//! must be skipped) and every attempt made; the platform carries out its [`Action`]s (calls a
//! model, waits) and reports what happened. Randomness (backoff jitter) and the time come in as
//! inputs, so tests drive it exactly, with a scripted upstream, and the Worker's driver holds no
//! policy.
//!
//! Time: the attempts of a request share `[upstream] request_deadline_ms`, counted from
//! [`Attempts::start`]. Each call gets at most what is left of it to start answering, and to
//! finish ([`Attempts::time_left`]: a whole body, or a stream however it is kept alive); a retry
//! whose wait would outlast it is not waited for (the next model is tried instead); once it has
//! passed, the request fails with a 504 that says so, or its stream ends with an error event.
//!
//! ```text
//!            start ──► Call(model) ──answered──► Deliver(model)
//!                        │   ▲
//!         failed, retry  │   │ waited
//!                        ▼   │
//!                      Wait(ms)
//!   failed, fall back / untranslatable ──► Call(next model) … ──► Fail(last error)
//! ```
//!
//! An answer is delivered as soon as it arrives, unless the route has a cascade (level 4,
//! [`crate::core::cascade`]) and the answer is one its chain rates: it is called for a whole
//! answer, then rated ([`Action::Rate`]); rated high enough it is delivered, else thrown away
//! and the next model called. Should every later model fail, the best answer thrown away is
//! delivered after all (a weak answer beats an error):
//!
//! ```text
//!   Call(rated model) ──answered──► Rate(model) ──score ≥ min_score──► Deliver(model)
//!                                       └──below, or no score──► Call(next model) …
//!   every later model failed ──► Deliver(best rejected), else Fail
//! ```

use crate::core::cascade::{CascadeStep, Verdict};
use crate::core::config::{Cascade, Config, UpstreamPolicy};
use crate::core::decision::{Decision, Level};
use crate::core::error::{CallOutcome, ErrorKind, RouterError};
use crate::core::fallback::{self, after_failure, Attempt, Next, Skip};
use crate::core::request::ChatRequest;

/// What the platform is to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call `model` (a key of `[models]`), giving it `timeout_ms` to start answering, and report
    /// the result with [`Attempts::called`]. `rated`: the answer will be rated before it is
    /// delivered, so ask for it whole ([`crate::core::cascade::rated_request`]).
    Call { model: String, timeout_ms: u64, rated: bool },
    /// Rate the answer `model` just gave ([`crate::core::cascade::rating`]) within `within_ms`,
    /// and report with [`Attempts::rated`].
    Rate { model: String, within_ms: u64 },
    /// Wait `ms` milliseconds, then report with [`Attempts::waited`].
    Wait { ms: u64 },
    /// The answer `model` gave goes to the client.
    Deliver { model: String },
    /// No model answered: this error goes to the client.
    Fail(RouterError),
}

/// How a call went, as the platform saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    /// The model answered (a whole answer read, or a stream's first event in hand).
    Answered,
    /// The request could not be put in the model's API; it was not called.
    Untranslatable(RouterError),
    /// The model was called and failed.
    Failed(RouterError),
}

/// The attempts of one request.
#[derive(Debug)]
pub struct Attempts {
    /// The models left to try: each with the reason to skip it, or its time to start answering
    /// (its own `timeout_ms`, else `[upstream]`'s).
    plan: std::vec::IntoIter<(String, Result<u64, Skip>)>,
    route: String,
    policy: UpstreamPolicy,
    /// Secret values scrubbed from every upstream error before it is kept or returned.
    secrets: Vec<String>,
    /// When the deadline passes (ms, the platform's clock), set by [`Attempts::start`].
    deadline_ms: u64,
    /// The model being tried, and its time to start answering.
    current: Option<(String, u64)>,
    retries: u32,
    attempts: Vec<Attempt>,
    last_error: Option<RouterError>,
    /// The route's cascade, if it has one.
    cascade: Option<Cascade>,
    /// Each answer of the cascade so far.
    steps: Vec<CascadeStep>,
    /// The best answer thrown away (its index in `steps`, its score), delivered should every
    /// later model fail.
    best_rejected: Option<(usize, f64)>,
}

/// A rating, as the platform made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rated {
    /// The score in [0, 1], or why there is none.
    pub score: Result<f64, String>,
    /// What the answer and its rating cost, where known.
    pub cost_usd: Option<f64>,
}

impl Attempts {
    /// The machine for `decision`'s models; `has_secret` tells whether a secret is set, `secrets`
    /// are the values to scrub from upstream errors.
    pub fn new(
        config: &Config,
        decision: &Decision,
        request: &ChatRequest,
        has_secret: impl Fn(&str) -> bool,
        secrets: Vec<String>,
    ) -> Attempts {
        let timeout_of =
            |model: &str| config.model(model).map_or(config.upstream.timeout_ms, |m| m.timeout_ms);
        let plan: Vec<(String, Result<u64, Skip>)> = fallback::plan(config, decision, request, has_secret)
            .into_iter()
            .map(|(model, skip)| {
                let timeout = skip.map_or_else(|| Ok(timeout_of(&model)), Err);
                (model, timeout)
            })
            .collect();
        // A named model, or an escalated conversation's frontier model, is not cascaded.
        let cascaded =
            decision.route != crate::core::decide::EXPLICIT_ROUTE && decision.level != Level::Conversation;
        let cascade = cascaded.then(|| config.route(&decision.route)).flatten();
        Attempts {
            cascade: cascade.and_then(|route| route.cascade.clone()),
            steps: Vec::new(),
            best_rejected: None,
            plan: plan.into_iter(),
            route: decision.route.clone(),
            policy: config.upstream,
            secrets,
            deadline_ms: u64::MAX,
            current: None,
            retries: 0,
            attempts: Vec::new(),
            last_error: None,
        }
    }

    /// The first action: call the first model that is not skipped. `now_ms` starts the
    /// request's deadline.
    pub fn start(&mut self, now_ms: u64) -> Action {
        self.deadline_ms = now_ms.saturating_add(self.policy.request_deadline_ms);
        self.next_model(now_ms)
    }

    /// The result of the [`Action::Call`] just carried out, the time, and a random number in
    /// [0, 1) for the backoff's jitter.
    pub fn called(&mut self, result: CallResult, now_ms: u64, jitter: f64) -> Action {
        let model = self.current.as_ref().map(|(model, _)| model.clone()).unwrap_or_default();
        match result {
            CallResult::Answered => {
                self.attempts.push(Attempt::Called { model: model.clone(), outcome: CallOutcome::Ok });
                if self.rates(&model) {
                    let within_ms = self.deadline_ms.saturating_sub(now_ms);
                    return Action::Rate { model, within_ms };
                }
                if self.cascade.is_some() {
                    self.steps.push(CascadeStep {
                        model: model.clone(),
                        score: None,
                        verdict: Verdict::Final,
                        cost_usd: None,
                    });
                }
                Action::Deliver { model }
            }
            CallResult::Untranslatable(error) => {
                // Another model's API may take it; if none does, this 400 is the answer.
                self.attempts.push(Attempt::Skipped { model, reason: Skip::Untranslatable });
                self.last_error = Some(error);
                self.next_model(now_ms)
            }
            CallResult::Failed(error) => {
                let error = error.redacted(self.secrets.iter().map(String::as_str));
                let rated = self.rates(&model);
                self.attempts.push(Attempt::Called { model, outcome: error.kind.outcome() });
                let mut next = after_failure(&self.policy, &error, self.retries, jitter);
                if rated && (error.kind == ErrorKind::UpstreamTimeout || next == Next::Fail) {
                    // A rated call was asked for a whole answer: one that timed out may have been
                    // generated (and billed) in full, so it is not asked again; a 400 may be the
                    // cascade's own change (`logprobs`), so the next model is asked as sent.
                    next = Next::Fallback;
                }
                match next {
                    Next::Retry { delay_ms } if now_ms.saturating_add(delay_ms) < self.deadline_ms => {
                        self.retries += 1;
                        Action::Wait { ms: delay_ms }
                    }
                    Next::Retry { .. } | Next::Fallback => {
                        self.last_error = Some(error);
                        self.next_model(now_ms)
                    }
                    Next::Fail => self.give_up(error),
                }
            }
        }
    }

    /// The rating of the answer just given ([`Action::Rate`]): deliver it, or call the next
    /// model.
    pub fn rated(&mut self, rated: Rated, now_ms: u64) -> Action {
        let model = self.current.as_ref().map(|(model, _)| model.clone()).unwrap_or_default();
        let min_score = self.cascade.as_ref().map_or(0.0, |c| c.min_score);
        let accepted = matches!(rated.score, Ok(score) if score >= min_score);
        let verdict = if accepted { Verdict::Accepted } else { Verdict::Rejected };
        let score = rated.score.as_ref().map_or(-1.0, |s| *s);
        self.steps.push(CascadeStep {
            model: model.clone(),
            score: Some(rated.score),
            verdict,
            cost_usd: rated.cost_usd,
        });
        if accepted {
            return Action::Deliver { model };
        }
        if self.best_rejected.is_none_or(|(_, best)| score > best) {
            self.best_rejected = Some((self.steps.len() - 1, score));
        }
        self.next_model(now_ms)
    }

    /// Whether `model`'s answer is rated: the route has a cascade and `model` is in its chain
    /// before the last.
    fn rates(&self, model: &str) -> bool {
        self.cascade
            .as_ref()
            .is_some_and(|c| c.chain[..c.chain.len().saturating_sub(1)].iter().any(|m| m == model))
    }

    /// No model answered well: the best answer thrown away, if there is one, else `error`.
    fn give_up(&mut self, error: RouterError) -> Action {
        match self.best_rejected.take() {
            Some((step, _)) => {
                self.steps[step].verdict = Verdict::Kept;
                Action::Deliver { model: self.steps[step].model.clone() }
            }
            None => Action::Fail(error),
        }
    }

    /// The route's cascade, if it has one.
    pub fn cascade(&self) -> Option<&Cascade> {
        self.cascade.as_ref()
    }

    /// The cascade's answers so far, in order (for `x-switchyard-cascade` and the log).
    pub fn cascade_steps(&self) -> &[CascadeStep] {
        &self.steps
    }

    /// What is left at `now_ms` of the request's deadline: the most a call's whole answer, a
    /// stream's included, may take.
    pub fn time_left(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }

    /// The [`Action::Wait`] is over: call the same model again.
    pub fn waited(&mut self, now_ms: u64) -> Action {
        self.call_current(now_ms)
    }

    /// Call the current model within its timeout and what is left of the deadline; fail if
    /// nothing is.
    fn call_current(&mut self, now_ms: u64) -> Action {
        let left = self.deadline_ms.saturating_sub(now_ms);
        match &self.current {
            Some((model, own)) if left > 0 => {
                let rated = self.rates(model);
                Action::Call { model: model.clone(), timeout_ms: (*own).min(left), rated }
            }
            _ => {
                let error = self.deadline_passed();
                self.give_up(error)
            }
        }
    }

    fn deadline_passed(&self) -> RouterError {
        let tried = self.attempts.iter().filter(|a| matches!(a, Attempt::Called { .. })).count();
        RouterError::new(
            ErrorKind::UpstreamTimeout,
            format!(
                "no answer within the request's deadline of {} ms ([upstream] request_deadline_ms), after {tried} calls",
                self.policy.request_deadline_ms
            ),
        )
    }

    /// Every call and skip so far, in order (for the headers and the log).
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Every call and skip, and the cascade's answers.
    pub fn into_parts(self) -> (Vec<Attempt>, Vec<CascadeStep>) {
        (self.attempts, self.steps)
    }

    /// The next model of the plan not to be skipped; when none is left, the last error (or why
    /// nothing could be called).
    fn next_model(&mut self, now_ms: u64) -> Action {
        for (model, timeout) in self.plan.by_ref() {
            match timeout {
                Err(reason) => self.attempts.push(Attempt::Skipped { model, reason }),
                Ok(timeout_ms) => {
                    self.current = Some((model, timeout_ms));
                    self.retries = 0;
                    return self.call_current(now_ms);
                }
            }
        }
        let error =
            self.last_error.take().unwrap_or_else(|| fallback::nothing_to_call(&self.route, &self.attempts));
        self.give_up(error)
    }
}
