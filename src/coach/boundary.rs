//! The boundary counter: the two-warning rule of `product.md` as a state machine, for
//! any number of warnings. It never resets during a call.
//!
//! ```text
//! clear --abuse--> first_warning_due --warns--> warned_once --abuse--> second_warning_due
//!       --warns--> warned_twice --abuse--> termination_permitted --call ends--> terminated
//! ```

use serde::{Deserialize, Serialize};

use crate::protocol::{BoundaryRecord, BoundaryState};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub warnings_allowed: u32,
    pub abuse_incidents: u32,
    pub warnings_given: u32,
    /// Warnings stated while none was due: recorded, not counted.
    pub warnings_not_due: u32,
    /// A warning is due (abuse since the last warning).
    pub due: bool,
    pub permitted: bool,
    /// The agent ended (or announced ending) the call because of abuse.
    pub terminated: bool,
    /// Ended because of abuse before termination was permitted.
    pub premature: bool,
}

/// What an event did to the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    None,
    /// The counts changed, the state did not (more abuse while a warning is due).
    Counts,
    /// The state changed.
    State,
}

impl Counter {
    pub fn new(warnings_allowed: u32) -> Counter {
        Counter {
            warnings_allowed: warnings_allowed.max(1),
            abuse_incidents: 0,
            warnings_given: 0,
            warnings_not_due: 0,
            due: false,
            permitted: false,
            terminated: false,
            premature: false,
        }
    }

    /// The wire state. With other than two warnings, `warned_once` means "some warnings
    /// given, more allowed", `second_warning_due` "a later warning due" and `warned_twice`
    /// "every warning given".
    pub fn state(&self) -> BoundaryState {
        if self.terminated && !self.premature {
            BoundaryState::Terminated
        } else if self.permitted {
            BoundaryState::TerminationPermitted
        } else if self.due {
            if self.warnings_given == 0 {
                BoundaryState::FirstWarningDue
            } else {
                BoundaryState::SecondWarningDue
            }
        } else if self.warnings_given >= self.warnings_allowed {
            BoundaryState::WarnedTwice
        } else if self.warnings_given > 0 {
            BoundaryState::WarnedOnce
        } else {
            BoundaryState::Clear
        }
    }

    /// A customer turn with abuse.
    pub fn abuse(&mut self) -> Change {
        if self.terminated {
            return Change::None;
        }
        self.abuse_incidents += 1;
        if self.permitted || self.due {
            return Change::Counts;
        }
        if self.warnings_given >= self.warnings_allowed {
            self.permitted = true;
        } else {
            self.due = true;
        }
        Change::State
    }

    /// The agent stated a boundary warning.
    pub fn warning(&mut self) -> Change {
        if self.due && !self.terminated {
            self.due = false;
            self.warnings_given += 1;
            Change::State
        } else {
            self.warnings_not_due += 1;
            Change::None
        }
    }

    /// The agent ended the call, or announced ending it. Only counts when abuse was the
    /// cause (any abuse incident recorded); returns whether it was premature.
    pub fn end_by_agent(&mut self) -> Option<bool> {
        if self.abuse_incidents == 0 || self.terminated {
            return None;
        }
        self.terminated = true;
        self.premature = !self.permitted;
        Some(self.premature)
    }

    pub fn compliant(&self) -> bool {
        !self.terminated || !self.premature
    }

    pub fn record(&self) -> BoundaryRecord {
        BoundaryRecord {
            state: self.state(),
            abuse_incidents: self.abuse_incidents,
            warnings_given: self.warnings_given,
            warnings_allowed: self.warnings_allowed,
            terminated: self.terminated && !self.premature,
            compliant: self.compliant(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BoundaryState::*;

    #[test]
    fn the_two_warning_rule() {
        let mut c = Counter::new(2);
        assert_eq!(c.state(), Clear);
        assert_eq!(
            c.warning(),
            Change::None,
            "a warning when none is due is not counted"
        );
        assert_eq!((c.warnings_given, c.warnings_not_due), (0, 1));
        assert_eq!(c.abuse(), Change::State);
        assert_eq!(c.state(), FirstWarningDue);
        assert_eq!(c.abuse(), Change::Counts);
        assert_eq!((c.state(), c.abuse_incidents), (FirstWarningDue, 2));
        c.warning();
        assert_eq!(c.state(), WarnedOnce);
        c.abuse();
        assert_eq!(c.state(), SecondWarningDue);
        c.warning();
        assert_eq!(c.state(), WarnedTwice);
        c.abuse();
        assert_eq!(c.state(), TerminationPermitted);
        assert_eq!(c.end_by_agent(), Some(false));
        assert_eq!(c.state(), Terminated);
        assert!(c.record().terminated && c.record().compliant);
    }

    #[test]
    fn premature_termination_stays_where_it_stood() {
        let mut c = Counter::new(2);
        c.abuse();
        assert_eq!(c.end_by_agent(), Some(true));
        let r = c.record();
        assert_eq!(
            (r.state, r.terminated, r.compliant),
            (FirstWarningDue, false, false)
        );
    }

    #[test]
    fn ending_a_calm_call_is_not_a_termination() {
        let mut c = Counter::new(2);
        assert_eq!(c.end_by_agent(), None);
        assert!(c.record().compliant);
    }

    #[test]
    fn any_number_of_warnings() {
        let mut c = Counter::new(3);
        for _ in 0..3 {
            c.abuse();
            assert!(c.due);
            c.warning();
        }
        assert_eq!(c.state(), WarnedTwice);
        c.abuse();
        assert_eq!(c.state(), TerminationPermitted);
    }
}
