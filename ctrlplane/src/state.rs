//! The appliance's state (DESIGN §6), as the console, Prometheus and the
//! controller heartbeat report it.

/// Where the appliance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Starting: ports up, next hops resolving.
    Selfcheck,
    Running,
    /// Shedding load on purpose to protect itself.
    Protect,
    /// Not forwarding (console `stop`).
    Stopped,
    /// A worker failed.
    Exception,
}

impl State {
    /// Every state, in the order Prometheus lists them.
    pub const ALL: [State; 5] = [
        State::Selfcheck,
        State::Running,
        State::Protect,
        State::Stopped,
        State::Exception,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Selfcheck => "selfcheck",
            State::Running => "running",
            State::Protect => "protect",
            State::Stopped => "stopped",
            State::Exception => "exception",
        }
    }
}
