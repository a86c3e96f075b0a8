//! The nudge catalogue of `product.md`: priority and the short imperative the agent sees.

use crate::protocol::{NudgeKind, Priority};

pub fn describe(kind: NudgeKind) -> (Priority, &'static str) {
    use NudgeKind::*;
    use Priority::*;
    match kind {
        StayComposed => (
            High,
            "Stay composed: drop the defensive phrasing and keep your tone even.",
        ),
        SlowDown => (
            Low,
            "Slow down: a calmer pace helps the customer calm down.",
        ),
        LetThemVent => (Medium, "Let them finish: listen before you answer."),
        ValidateFeelings => (High, "Acknowledge their frustration before solving."),
        ApologizeSpecifically => (High, "Apologise for the specific inconvenience."),
        AvoidBlanketFault => (Medium, "Own the issue without blaming the whole company."),
        AskOpenQuestions => (Medium, "Ask an open question to find the root cause."),
        SummarizeBack => (Medium, "Summarise the problem back to confirm it."),
        AskDesiredOutcome => (Medium, "Ask what resolution they would like."),
        OfferOptions => (Medium, "Offer a second option, not just one remedy."),
        GiveTimeframe => (Medium, "Give a concrete timeframe, not \"soon\"."),
        GiveConfirmation => (Medium, "State the steps taken and a reference number."),
        CheckSatisfaction => (Medium, "Check the solution meets their expectations."),
        FirstBoundaryWarningDue => (
            Critical,
            "Calmly state the conversation must stay respectful to continue.",
        ),
        SecondBoundaryWarningDue => (
            Critical,
            "Second warning: say you cannot continue if the abusive language goes on.",
        ),
        TerminationPermitted => (Critical, "Two warnings given: you may end this call."),
        TerminationPremature => (
            Critical,
            "Ending now is premature: two warnings come first.",
        ),
        EscalateToSupervisor => (
            High,
            "Outside your authority: tell them you are transferring it, then transfer.",
        ),
    }
}

/// Boundary nudges follow the counter, not the cooldown.
pub fn is_boundary(kind: NudgeKind) -> bool {
    use NudgeKind::*;
    matches!(
        kind,
        FirstBoundaryWarningDue
            | SecondBoundaryWarningDue
            | TerminationPermitted
            | TerminationPremature
    )
}

/// One-shot nudges clear themselves after their display period.
pub fn one_shot(kind: NudgeKind) -> bool {
    matches!(
        kind,
        NudgeKind::AvoidBlanketFault | NudgeKind::TerminationPremature
    )
}
