import CZstd
import NIOCore
import NIOPosix

/// zstd bodies (`Content-Encoding: zstd`, RFC 8878), through libzstd's streaming decoder: the output is capped, so a
/// small frame that claims or expands to gigabytes (a bomb) stops at the cap, and the window a frame may ask for is
/// bounded by the cap too, so a hostile frame header cannot make the decoder allocate more than the body may hold.
public enum Zstd {
    /// Why a body could not be decoded.
    public enum Failure: Error, Equatable {
        /// It decodes to more than the cap.
        case tooLarge
        /// It is not zstd, or ends before its last frame does.
        case invalid(String)
    }

    /// The decoded bytes of `input`, one or more frames, at most `maxSize` of them.
    public static func decompress(_ input: ByteBuffer, maxSize: Int) throws(Failure) -> ByteBuffer {
        let stream = decoder()
        // Whatever happened to the last input (an error midway), this one starts afresh.
        ZSTD_DCtx_reset(stream, ZSTD_reset_session_and_parameters)
        // The window a frame may need: the smallest power of two that holds the cap (2^10 … 2^27).
        var windowLog = 10
        while (1 << windowLog) < maxSize && windowLog < 27 { windowLog += 1 }
        ZSTD_DCtx_setParameter(stream, ZSTD_d_windowLogMax, Int32(windowLog))
        // A frame that says how large it decodes to is refused at once when that is past the cap.
        let declared = input.withUnsafeReadableBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        if declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR && declared > UInt64(maxSize) { throw .tooLarge }
        var output = ByteBuffer()
        let chunk = min(max(ZSTD_DStreamOutSize(), 1 << 16), maxSize + 1)
        var last = 0
        try input.withUnsafeReadableBytes { (raw: UnsafeRawBufferPointer) throws(Failure) in
            var inBuffer = ZSTD_inBuffer(src: raw.baseAddress, size: raw.count, pos: 0)
            while true {
                var produced = 0
                var status = 0
                output.reserveCapacity(minimumWritableBytes: chunk)
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { space in
                    var outBuffer = ZSTD_outBuffer(dst: space.baseAddress, size: min(space.count, chunk), pos: 0)
                    status = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                    produced = outBuffer.pos
                    return outBuffer.pos
                }
                if ZSTD_isError(status) != 0 {
                    // A frame that needs a window larger than the cap would decode to more than it.
                    if ZSTD_getErrorCode(status) == ZSTD_error_frameParameter_windowTooLarge { throw .tooLarge }
                    throw .invalid(String(cString: ZSTD_getErrorName(status)))
                }
                if output.readableBytes > maxSize { throw .tooLarge }
                last = status
                // Done when every input byte is read and the decoder holds nothing more to give.
                if inBuffer.pos == inBuffer.size && produced < chunk { break }
            }
        }
        // A frame not ended: the body was cut short.
        guard last == 0 else { throw .invalid("truncated") }
        guard input.readableBytes > 0 else { throw .invalid("empty") }
        return output
    }

    /// `input` as one zstd frame at `level` (for tests, benchmarks and clients).
    public static func compress(_ input: [UInt8], level: Int32 = 3) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let written = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { destination in
                ZSTD_compress(destination.baseAddress, destination.count, source.baseAddress, source.count, level)
            }
        }
        precondition(ZSTD_isError(written) == 0, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
        output.removeLast(output.count - written)
        return output
    }
}

extension Zstd {
    /// A compression context per thread, kept for the thread's life: making one per call costs more than compressing
    /// a chunk at the fast levels.
    private final class Context: @unchecked Sendable {  // used by its own thread only
        let pointer: OpaquePointer

        init() { pointer = ZSTD_createCCtx() }

        deinit { ZSTD_freeCCtx(pointer) }
    }

    private static let contexts = ThreadSpecificVariable<Context>()

    /// A decompression stream per thread, kept for the thread's life (making one costs about 10 µs, more than
    /// decoding a small chunk).
    private final class Decoder: @unchecked Sendable {  // used by its own thread only
        let pointer: OpaquePointer

        init() { pointer = ZSTD_createDStream() }

        deinit { ZSTD_freeDStream(pointer) }
    }

    private static let decoders = ThreadSpecificVariable<Decoder>()

    /// This thread's decompression stream.
    static func decoder() -> OpaquePointer {
        decoders.value(orMake: Decoder.init).pointer
    }

    /// `input` as one zstd frame at `level`, appended to `output`, with this thread's context.
    public static func compress(_ input: [UInt8], level: Int32, appendingTo output: inout [UInt8]) {
        let context = contexts.value(orMake: Context.init)
        let start = output.count
        let bound = ZSTD_compressBound(input.count)
        output += repeatElement(0, count: bound)
        let written = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { destination in
                ZSTD_compressCCtx(context.pointer, destination.baseAddress! + start, bound, source.baseAddress, source.count, level)
            }
        }
        precondition(ZSTD_isError(written) == 0, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
        output.removeLast(bound - written)
    }
}
