// Package fcapi is Firecracker's REST API in Go: the request models of
// firecracker.yaml (field names exactly as Firecracker spells them), the
// --config-file document that holds them, and a client for the API socket
// (HTTP over a Unix socket).
//
// Only the models ccos sends are here. Optional fields that Firecracker
// defaults are omitted when zero; fields whose value matters for security
// (is_read_only, smt) are always written, so the document says what it
// means without relying on defaults.
package fcapi

// BootSource is the "boot-source" section and the body of PUT /boot-source.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	BootArgs        string `json:"boot_args,omitempty"`
	InitrdPath      string `json:"initrd_path,omitempty"`
}

// Drive is one entry of "drives" and the body of PUT /drives/{drive_id}.
type Drive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
	// CacheType is "Unsafe" or "Writeback"; empty for Firecracker's default.
	CacheType string `json:"cache_type,omitempty"`
	// IOEngine is "Sync" or "Async"; empty for Firecracker's default.
	IOEngine string `json:"io_engine,omitempty"`
}

// MachineConfiguration is the "machine-config" section and the body of PUT
// /machine-config.
type MachineConfiguration struct {
	VCPUCount       int  `json:"vcpu_count"`
	MemSizeMiB      int  `json:"mem_size_mib"`
	SMT             bool `json:"smt"`
	TrackDirtyPages bool `json:"track_dirty_pages"`
	// HugePages is "None", "Transparent" or "2M"; empty for the default.
	HugePages string `json:"huge_pages,omitempty"`
}

// NetworkInterface is one entry of "network-interfaces" and the body of PUT
// /network-interfaces/{iface_id}.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
}

// Vsock is the "vsock" section and the body of PUT /vsock.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// Logger is the "logger" section and the body of PUT /logger.
type Logger struct {
	LogPath       string `json:"log_path,omitempty"`
	Level         string `json:"level,omitempty"`
	ShowLevel     bool   `json:"show_level"`
	ShowLogOrigin bool   `json:"show_log_origin"`
}

// Metrics is the "metrics" section and the body of PUT /metrics.
type Metrics struct {
	MetricsPath string `json:"metrics_path"`
}

// Balloon is the "balloon" section and the body of PUT /balloon. ccos never
// configures one (see VMConfig.Balloon); the type exists so that the model
// covers the section and its contract can be tested.
type Balloon struct {
	AmountMiB             int  `json:"amount_mib"`
	DeflateOnOOM          bool `json:"deflate_on_oom"`
	StatsPollingIntervalS int  `json:"stats_polling_interval_s,omitempty"`
}

// EntropyDevice is the "entropy" section and the body of PUT /entropy: a
// virtio-rng device, so that the guest's getrandom does not block at boot.
type EntropyDevice struct{}

// InstanceActionInfo is the body of PUT /actions.
type InstanceActionInfo struct {
	ActionType string `json:"action_type"`
}

// The action types of InstanceActionInfo that ccos uses.
const (
	ActionInstanceStart  = "InstanceStart"
	ActionSendCtrlAltDel = "SendCtrlAltDel"
)

// Error is the body of every Firecracker error response.
type Error struct {
	FaultMessage string `json:"fault_message"`
}

// VMConfig is a Firecracker --config-file document (FullVmConfiguration),
// with the sections in the order Firecracker's own examples write them.
type VMConfig struct {
	BootSource        BootSource           `json:"boot-source"`
	Drives            []Drive              `json:"drives"`
	MachineConfig     MachineConfiguration `json:"machine-config"`
	NetworkInterfaces []NetworkInterface   `json:"network-interfaces,omitempty"`
	Vsock             *Vsock               `json:"vsock,omitempty"`
	Logger            *Logger              `json:"logger,omitempty"`
	Metrics           *Metrics             `json:"metrics,omitempty"`
	// Balloon is always nil in documents ccos writes: a guest gets exactly
	// the memory of :microvm :resources :mem_mb, and a balloon could only
	// take some of it back (the seed transcript inflated one to the whole
	// of mem_mb, leaving the guest nothing).
	Balloon *Balloon       `json:"balloon,omitempty"`
	Entropy *EntropyDevice `json:"entropy,omitempty"`
}
