//! Phases of handling one request, timed by whatever clock the platform has.
//!
//! Core has no clock of its own: the Worker passes `performance.now()`, the CLI `Instant`. The
//! phases become the `Server-Timing` header, `/v1/route`'s `timing_ms` and the decision log.

/// One phase of request handling, for `Server-Timing` and `timing_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub name: &'static str,
    pub ms: f64,
}

/// Times consecutive phases: each [`Stopwatch::lap`] closes the phase running since the last.
pub struct Stopwatch<'c> {
    now: &'c dyn Fn() -> f64,
    last: f64,
    pub phases: Vec<Phase>,
}

impl<'c> Stopwatch<'c> {
    /// Starts timing at `started` (a reading of `now` taken earlier, e.g. when the request came in).
    pub fn since(started: f64, now: &'c dyn Fn() -> f64) -> Stopwatch<'c> {
        Stopwatch { now, last: started, phases: Vec::new() }
    }

    /// Ends the current phase as `name` and starts the next.
    pub fn lap(&mut self, name: &'static str) {
        let now = (self.now)();
        self.phases.push(Phase { name, ms: now - self.last });
        self.last = now;
    }

    /// Like [`Stopwatch::lap`], but a phase that took no measurable time is left out (the encoder's
    /// load, which only the first request of an isolate pays).
    pub fn lap_if_any(&mut self, name: &'static str) {
        self.lap(name);
        if self.phases.last().is_some_and(|p| p.ms <= 0.0) {
            self.phases.pop();
        }
    }

    pub fn now(&self) -> f64 {
        (self.now)()
    }
}

/// `Server-Timing` header value: `parse;dur=0.2, route;dur=0.1, upstream;dur=412.0`.
pub fn server_timing(phases: &[Phase]) -> String {
    phases.iter().map(|p| format!("{};dur={:.2}", p.name, p.ms)).collect::<Vec<_>>().join(", ")
}
