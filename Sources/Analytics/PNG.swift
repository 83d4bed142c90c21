import CZlib
import LumosCore

/// A small PNG encoder and decoder (RFC 2083 / ISO 15948) for the heatmaps: 8-bit RGB,
/// filter type 0, zlib's deflate for the IDAT stream and its crc32 for the chunks. The decoder
/// reads what the encoder writes (and checks every CRC); the tests and nothing else use it.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Row-major RGB triples.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = fill.0
            pixels[3 * i + 1] = fill.1
            pixels[3 * i + 2] = fill.2
        }
    }

    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        get {
            let i = 3 * (y * width + x)
            return (pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set {
            let i = 3 * (y * width + x)
            pixels[i] = newValue.0
            pixels[i + 1] = newValue.1
            pixels[i + 2] = newValue.2
        }
    }
}

public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

    public static func encode(_ image: RGBImage) throws -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity((image.width * 3 + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)  // filter: none
            raw += image.pixels[(y * image.width * 3)..<((y + 1) * image.width * 3)]
        }
        var out = signature
        var ihdr = be32(UInt32(image.width)) + be32(UInt32(image.height))
        ihdr += [8, 2, 0, 0, 0]  // 8 bits, RGB, deflate, adaptive filtering, no interlace
        chunk("IHDR", ihdr, into: &out)
        chunk("IDAT", try deflate(raw), into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    /// Decodes an 8-bit RGB PNG with filter 0 rows (what `encode` writes), checking the
    /// signature, each chunk's CRC and the IHDR.
    public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
        guard bytes.count > 8, Array(bytes[0..<8]) == signature else { throw LumosError.invalid("png: no PNG signature") }
        var i = 8
        var width = 0, height = 0
        var idat: [UInt8] = []
        var sawEnd = false
        while i + 12 <= bytes.count {
            let length = Int(readBE32(bytes, i))
            guard i + 12 + length <= bytes.count else { throw LumosError.invalid("png: a chunk runs past the end") }
            let type = Array(bytes[(i + 4)..<(i + 8)])
            let data = Array(bytes[(i + 8)..<(i + 8 + length)])
            let crc = readBE32(bytes, i + 8 + length)
            guard crc == crc32Of(type + data) else { throw LumosError.invalid("png: bad CRC in chunk \(String(decoding: type, as: UTF8.self))") }
            switch String(decoding: type, as: UTF8.self) {
            case "IHDR":
                guard data.count == 13 else { throw LumosError.invalid("png: IHDR is \(data.count) bytes") }
                width = Int(readBE32(data, 0))
                height = Int(readBE32(data, 4))
                guard Array(data[8..<13]) == [8, 2, 0, 0, 0], width > 0, height > 0 else {
                    throw LumosError.invalid("png: only 8-bit RGB without interlace is read here")
                }
            case "IDAT": idat += data
            case "IEND": sawEnd = true
            default: break
            }
            i += 12 + length
        }
        guard sawEnd, width > 0 else { throw LumosError.invalid("png: missing IHDR or IEND") }
        let raw = try inflate(idat, expected: (width * 3 + 1) * height)
        var image = RGBImage(width: width, height: height)
        for y in 0..<height {
            let row = y * (width * 3 + 1)
            guard raw[row] == 0 else { throw LumosError.invalid("png: row \(y) uses filter \(raw[row])") }
            image.pixels.replaceSubrange((y * width * 3)..<((y + 1) * width * 3), with: raw[(row + 1)..<(row + 1 + width * 3)])
        }
        return image
    }

    static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        let t = Array(type.utf8)
        out += be32(UInt32(data.count)) + t + data + be32(crc32Of(t + data))
    }

    static func crc32Of(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
    }

    static func deflate(_ data: [UInt8]) throws -> [UInt8] {
        var size = compressBound(uLong(data.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in compress2(o.baseAddress, &size, d.baseAddress, uLong(d.count), 6) }
        }
        guard status == Z_OK else { throw LumosError.failed("png: zlib compress2 failed (\(status))") }
        return Array(out.prefix(Int(size)))
    }

    static func inflate(_ data: [UInt8], expected: Int) throws -> [UInt8] {
        var size = uLong(expected)
        var out = [UInt8](repeating: 0, count: expected)
        let status = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in uncompress(o.baseAddress, &size, d.baseAddress, uLong(d.count)) }
        }
        guard status == Z_OK, Int(size) == expected else { throw LumosError.invalid("png: the image data does not inflate to \(expected) bytes (zlib \(status))") }
        return out
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    static func readBE32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}
