import NIOCore

/// The life of one request in a Redis Cluster, apart from its I/O: where to send it, and what each answer means.
/// `RedisCluster` carries the actions out; this type decides, and is tested alone.
///
/// ```
/// start ─▶ send by slot ─replies─▶ done ──────────────────────────▶ answer
///              ▲   │         ├─ MOVED/ASK ─▶ send to that node (ASKING first for ASK; MOVED is learned)
///              │   │         └─ TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN ─▶ retry after a backoff
///              │   ├─ no master known ─▶ refresh the map ─▶ retry after a backoff
///              │   └─ not written (node unreachable) ─▶ retry after a backoff; written and lost ─▶ fail
///              └──────────── retry ◀──┘
/// ```
///
/// Redirects are followed `maxRedirects` times, then the redirect itself is the answer. A retry waits 20 ms, doubling
/// to 200 ms, and never past the request's deadline: then the caller gets the last error reply, or the error.
/// A request that was written and whose reply was lost is never sent again: it may have run.
struct RedisClusterRequestStateMachine {
    /// What to do next.
    enum Action: Equatable {
        /// Send to the master of the request's slot as the map knows it (any master for a request without a key).
        case sendBySlot
        /// Send to the node at this address; `asking`: after `ASKING` (its reply is not the request's).
        case send(to: RedisAddress, asking: Bool)
        /// The map knows no master for the slot: load it, then call `mapRefreshed(now:)`.
        case refreshMap
        /// Wait, then send by slot again.
        case retry(after: TimeAmount)
        /// Answer these replies: final, or an error reply the caller will see.
        case answer([RedisReply])
        /// Fail with this error.
        case fail(RedisError)
    }

    /// Redirects followed for one request before its error reply is answered as it is.
    static let maxRedirects = 5
    /// Sends of one request at most, redirects and retries together.
    /// 20 ms, doubled per try, at most 200 ms.
    static let backoff = Backoff(firstMilliseconds: 20, maxMilliseconds: 200)
    static let maxTries = 50

    /// Whether the request is `MULTI` … `EXEC`: a redirect then shows in a queued command's reply.
    let transaction: Bool
    /// When the caller stops waiting.
    let deadline: NIODeadline
    /// Sends so far beyond the first.
    private(set) var tries = 0

    init(transaction: Bool, deadline: NIODeadline) {
        self.transaction = transaction
        self.deadline = deadline
    }

    /// The first action.
    func start() -> Action { .sendBySlot }

    /// The map has no master for the request's slot.
    func noMaster() -> Action { .refreshMap }

    /// The map was loaded (or failed to be) after `noMaster`.
    mutating func mapRefreshed(now: NIODeadline, slot: Int?) -> Action {
        retry(now: now, orAnswer: nil, failure: RedisError(code: .unavailable, message: "Redis Cluster has no master for slot \(slot ?? -1)"))
    }

    /// The replies of the last send arrived (without `ASKING`'s). Answers the action, and a `MOVED` to remember
    /// (the slot lives elsewhere from now on).
    mutating func replied(_ replies: [RedisReply], now: NIODeadline) -> (action: Action, learn: RedisRedirect?) {
        let inspected = transaction ? replies.dropLast() : replies.prefix(1)
        for case .error(let error) in inspected {
            if let redirect = RedisRedirect(error) {
                guard tries < Self.maxRedirects else { return (.answer(replies), nil) }
                tries += 1
                return (.send(to: redirect.address, asking: redirect.asking), redirect.asking ? nil : redirect)
            }
            if Self.passing.contains(error.serverPrefix ?? "") {
                return (retry(now: now, orAnswer: replies, failure: nil), nil)
            }
        }
        return (.answer(replies), nil)
    }

    /// The last send failed with `error`. The map should be refreshed whatever the action: the node may be gone.
    mutating func failed(_ error: RedisError, now: NIODeadline) -> Action {
        // Only a request never written is sent again; one that was may have run.
        guard error.code == .connectionFailed else { return .fail(error) }
        return retry(now: now, orAnswer: nil, failure: error)
    }

    /// Cluster states that pass: the same request succeeds a little later.
    static let passing: Set<String> = ["TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"]

    /// A retry after a backoff, or, when the deadline leaves no time (or the tries are spent), `replies` as the answer
    /// or `failure` (a timeout when none).
    private mutating func retry(now: NIODeadline, orAnswer replies: [RedisReply]?, failure: RedisError?) -> Action {
        let delay = TimeAmount.milliseconds(Int64(Self.backoff.delay(attempt: tries)))
        guard now + delay < deadline, tries < Self.maxTries else {
            if let replies { return .answer(replies) }
            return .fail(failure ?? RedisError(code: .timeout, message: "Redis Cluster did not answer in time"))
        }
        tries += 1
        return .retry(after: delay)
    }
}
