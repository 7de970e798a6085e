import Shared

/// What the queue did with a request's events, as the routes answer it: queued (with the budgets the rate-limit
/// headers show), refused by the organization's rate limit, a retry answered with the first request's answer, or an
/// idempotency key used with another request. Nothing is queued unless `queued`.
enum PublishDecision: Sendable, Equatable {
    /// Queued; each limited measure's budget after it (none without a limit).
    case queued(budgets: [RateBudget])
    /// Over the rate limit; nothing queued.
    case limited(RateRefusal)
    /// A retry of a request already queued under the same idempotency key: its 202 body; nothing queued.
    case replayed(answer: String)
    /// The idempotency key was used with another request; nothing queued.
    case conflict

    /// Queued with no limit to report.
    static let queued = PublishDecision.queued(budgets: [])

    /// What the append script decided, as the gateway answers it.
    init(_ decision: GuardedAppend.Decision) {
        switch decision {
        case .admitted(_, let budgets): self = .queued(budgets: budgets)
        case .limited(let refusal): self = .limited(refusal)
        case .replayed(let answer): self = .replayed(answer: answer)
        case .conflict: self = .conflict
        }
    }

    /// Whether the events were queued.
    var isQueued: Bool {
        if case .queued = self { return true }
        return false
    }
}
