import NIOCore

/// The life of one Redis connection, apart from its I/O: which state it is in, and what the connection must do on
/// each event (a command to send, a connection made or failed, a handshake done, a link lost, a shutdown).
/// `RedisConnection` carries the actions out on its event loop; this type decides, and is tested alone.
///
/// ```
/// disconnected ─command─▶ connecting ─connected─▶ handshaking ─done─▶ ready ─link lost─▶ disconnected
///                              │                       │
///                              └───────failed──────────┴─▶ backingOff ─command after the delay─▶ connecting
/// any ─shutdown─▶ closed
/// ```
///
/// A failed attempt doubles the delay before the next one (up to the maximum); commands sent meanwhile fail at
/// once as `unavailable`, so callers get a fast 503 instead of a wait. A link that drops after it worked is
/// reconnected at the next command, with the delay reset.
struct RedisConnectionStateMachine {
    enum State: Equatable {
        /// No connection; the next command starts one.
        case disconnected
        /// A TCP connection is being made.
        case connecting
        /// Connected; the handshake (AUTH, SELECT) is in flight.
        case handshaking
        /// Commands are written as they come.
        case ready
        /// The last attempt failed: commands fail at once until `until`.
        case backingOff(until: NIODeadline)
        /// Shut down for good.
        case closed
    }

    /// What to do with a command.
    enum CommandAction: Equatable {
        /// Write it now.
        case write
        /// Hold it until the connection is ready (or fails).
        case hold
        /// Hold it and start connecting.
        case connectAndHold
        /// Fail it at once.
        case fail(RedisError)
    }

    /// What to do once the TCP connection is made.
    enum ConnectedAction: Equatable {
        /// Send the handshake; the held commands wait for it.
        case handshake
        /// No handshake is needed: write the held commands.
        case writeHeld(reconnected: Bool)
        /// Shut down meanwhile: close the new connection.
        case close
    }

    /// What to do when an attempt failed.
    enum FailedAction: Equatable {
        /// Fail the held commands; log the outage when `firstFailure` (once per outage, not per attempt).
        case failHeld(RedisError, firstFailure: Bool)
    }

    private(set) var state = State.disconnected
    /// The delays between attempts, doubled per failure, reset by a success.
    private var backoff: Backoff
    /// The delay the next failed attempt backs off for.
    var delayMilliseconds: Int { backoff.currentMilliseconds }
    /// An outage is in progress and has been logged.
    private var down = false
    /// Why the last attempt failed: commands refused while backing off say it (a wrong CA, a wrong password).
    private(set) var lastFailure: String?

    init(reconnectDelayMilliseconds: Int, maxReconnectDelayMilliseconds: Int) {
        backoff = Backoff(firstMilliseconds: reconnectDelayMilliseconds, maxMilliseconds: maxReconnectDelayMilliseconds)
    }

    /// A command is to be sent at `now`.
    mutating func command(now: NIODeadline) -> CommandAction {
        switch state {
        case .ready:
            return .write
        case .connecting, .handshaking:
            return .hold
        case .disconnected:
            state = .connecting
            return .connectAndHold
        case .backingOff(let until):
            guard now >= until else {
                return .fail(RedisError(code: .unavailable, message: "\(lastFailure ?? "Redis is unreachable"); reconnecting"))
            }
            state = .connecting
            return .connectAndHold
        case .closed:
            return .fail(RedisError(code: .shutdown, message: "Redis client is shut down"))
        }
    }

    /// The TCP connection is made.
    mutating func connected(needsHandshake: Bool) -> ConnectedAction {
        guard state == .connecting else { return .close }
        if needsHandshake {
            state = .handshaking
            return .handshake
        }
        return .writeHeld(reconnected: becameReady())
    }

    /// The handshake succeeded; answers whether this ends an outage (to log that the link is back).
    mutating func handshakeSucceeded() -> ConnectedAction {
        guard state == .handshaking else { return .close }
        return .writeHeld(reconnected: becameReady())
    }

    private mutating func becameReady() -> Bool {
        state = .ready
        backoff.reset()
        lastFailure = nil
        defer { down = false }
        return down
    }

    /// Connecting or the handshake failed at `now`.
    mutating func attemptFailed(_ error: RedisError, now: NIODeadline) -> FailedAction {
        guard state == .connecting || state == .handshaking else {
            return .failHeld(state == .closed ? RedisError(code: .shutdown, message: "Redis client is shut down") : error, firstFailure: false)
        }
        state = .backingOff(until: now + .milliseconds(Int64(backoff.next())))
        lastFailure = error.message
        defer { down = true }
        return .failHeld(error, firstFailure: !down)
    }

    /// A connection that was ready closed; answers whether to log it (not after a shutdown).
    mutating func linkLost() -> Bool {
        guard state == .ready else { return false }
        state = .disconnected
        backoff.reset()
        return true
    }

    /// Shut down; answers whether it was not already.
    mutating func shutdown() -> Bool {
        guard state != .closed else { return false }
        state = .closed
        return true
    }
}
