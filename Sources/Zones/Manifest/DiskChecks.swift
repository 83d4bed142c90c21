import LumosCore

/// One entry of a kvm VM's disks[] (vmadm(8) "disks.*"), typed. Each disk is a Lumos volume
/// `<pool>/<uuid>-disk<N>` (the zvol of SmartOS; docs/vm.md "Disks"): the boot disk an O(1)
/// clone of its image's snapshot, the others empty volumes of `size` MiB. A CD-ROM is an ISO
/// file on the host given by `path`, opened read-only.
public struct VMDisk: Sendable, Equatable {
    public enum Model: String, Sendable, CaseIterable { case virtio, ide, scsi }
    public enum Media: String, Sendable { case disk, cdrom }

    public var boot: Bool
    public var imageUUID: String?
    /// MiB; for an image disk the image's size unless larger.
    public var size: Int64?
    public var model: Model
    public var media: Media
    /// The ISO of a cdrom (a host file); for disks the volume's file, set by vmadm at create.
    public var path: String?
    public var blockSize: Int?
    /// The volume's dataset (`zones/<uuid>-disk<N>`), set by vmadm at create.
    public var dataset: String?

    /// `defaultModel` is the VM's disk_driver (vmadm: virtio when absent).
    public init(json o: [String: JSONValue], defaultModel: Model = .virtio) {
        boot = o["boot"]?.boolValue ?? false
        imageUUID = o["image_uuid"]?.stringValue?.lowercased()
        size = o["size"]?.intValue ?? o["image_size"]?.intValue
        model = o["model"]?.stringValue.flatMap(Model.init(rawValue:)) ?? defaultModel
        media = o["media"]?.stringValue.flatMap(Media.init(rawValue:)) ?? .disk
        path = o["path"]?.stringValue
        blockSize = o["block_size"]?.intValue.map(Int.init)
        dataset = o["zfs_filesystem"]?.stringValue
    }
}

/// disks[] checks, one line each: `disks[N].key: what is wrong; what to do`.
enum DiskChecks {
    /// Keys Lumos acts on (vmadm(8) "disks.*").
    static let keys: Set<String> = ["boot", "image_uuid", "image_size", "image_name", "size", "model", "media", "path",
                                    "block_size", "zfs_filesystem", "zpool"]
    /// vmadm's disk keys that Lumos refuses, with the reason.
    static let unsupported = [
        "refreservation": "btrfs cannot reserve space for one volume; Lumos volumes are thin (check free space with lumos pool list)",
        "nocreate": "a disk that is not created by vmadm would be a volume outside the VM's datasets; give size (an empty volume) or image_uuid instead",
        "compression": "compression is a pool property in Lumos storage (lumos pool create --compression)",
        "uuid": "Lumos names a VM's volumes <pool>/<uuid>-disk<N>; remove it",
        "pci_slot": "QEMU places the disks on its own buses; remove it",
        "notrim": "Lumos's QEMU does not pass discard through yet; remove it",
    ]
    static let maxDisks = 8

    /// `recorded`: entries may carry what vmadm records at create (zfs_filesystem, path).
    static func check(_ value: JSONValue, recorded: Bool = false) throws {
        guard let list = value.arrayValue else { throw LumosError.invalid("disks: expected an array of disk objects, got \(value.typeName)") }
        if list.count > maxDisks { throw LumosError.invalid("disks: \(list.count) disks; a VM may have at most \(maxDisks)") }
        var boots = 0
        for (i, e) in list.enumerated() {
            let at = "disks[\(i)]"
            let made = recorded && e.objectValue?["zfs_filesystem"] != nil
            try checkOne(e, at: at, partial: made)
            if e.objectValue?["boot"]?.boolValue == true { boots += 1 }
        }
        if boots > 1 { throw LumosError.invalid("disks: \(boots) disks have boot=true; a VM boots from one disk, set boot on one only") }
    }

    static func checkOne(_ e: JSONValue, at: String, partial: Bool) throws {
        guard let o = e.objectValue else { throw LumosError.invalid("\(at): expected a disk object, got \(e.typeName)") }
        for key in o.keys.sorted() {
            if let why = unsupported[key] { throw LumosError.unsupported("\(at).\(key): not supported: \(why)") }
            if !keys.contains(key) {
                throw LumosError.invalid("\(at).\(key): unknown disk property; use \(keys.sorted().joined(separator: ", "))")
            }
        }
        if let v = o["boot"], v.boolValue == nil { throw LumosError.invalid("\(at).boot: expected true or false, got \(v.typeName)") }
        if let v = o["model"] {
            guard let s = v.stringValue, VMDisk.Model(rawValue: s) != nil else {
                throw LumosError.invalid("\(at).model: unknown disk model \(ValueChecks.show(v)); use virtio, ide or scsi")
            }
        }
        if let v = o["media"] {
            guard let s = v.stringValue, VMDisk.Media(rawValue: s) != nil else {
                throw LumosError.invalid("\(at).media: \(ValueChecks.show(v)) is not a media type; use disk or cdrom")
            }
        }
        if let v = o["image_uuid"] {
            guard let s = v.stringValue, ValueChecks.isUUID(s) else { throw LumosError.invalid("\(at).image_uuid: \(ValueChecks.show(v)) is not a UUID") }
        }
        for key in ["size", "image_size"] {
            guard let v = o[key] else { continue }
            guard let n = v.intValue, n >= 1, n <= 16 << 20 else {
                throw LumosError.invalid("\(at).\(key): \(ValueChecks.show(v)) is not a size; give MiB from 1 to \(16 << 20)")
            }
        }
        if let v = o["block_size"] {
            guard let n = v.intValue, [512, 1024, 2048, 4096].contains(n) else {
                throw LumosError.invalid("\(at).block_size: \(ValueChecks.show(v)) is not a block size; use 512, 1024, 2048 or 4096")
            }
        }
        if let v = o["path"] {
            guard let s = v.stringValue, s.hasPrefix("/"), !ValueChecks.hasControlCharacters(s) else {
                throw LumosError.invalid("\(at).path: \(ValueChecks.show(v)) is not an absolute path")
            }
        }
        if partial { return }
        if o["zfs_filesystem"] != nil { throw LumosError.invalid("\(at).zfs_filesystem: is set by vmadm (<pool>/<uuid>-disk<N>); remove it") }
        let media = o["media"]?.stringValue ?? "disk"
        if media == "cdrom" {
            guard o["path"] != nil else { throw LumosError.invalid("\(at): a cdrom needs path, the ISO file on the host") }
            if o["model"]?.stringValue == "virtio" { throw LumosError.invalid("\(at).model: a cdrom cannot be virtio; use ide or scsi") }
            if o["image_uuid"] != nil || o["size"] != nil { throw LumosError.invalid("\(at): a cdrom is its ISO (path); remove image_uuid and size") }
        } else {
            if o["path"] != nil { throw LumosError.invalid("\(at).path: is set by vmadm for disks (only a cdrom takes a path); remove it") }
            if o["image_uuid"] == nil && o["size"] == nil {
                throw LumosError.invalid("\(at): give image_uuid (a disk cloned from an image) or size in MiB (an empty disk)")
            }
        }
    }
}
