// Package protocol is Gear's codec for the Gearman wire protocol: the binary packets exchanged by
// clients, workers and job servers, and the text admin lines served on the same port.
//
// The codec knows nothing about queues or sockets beyond io.Reader/io.Writer: it turns bytes into typed
// packets and back. Decoding checks every length before it allocates and accepts any split of the input.
package protocol

import (
	"encoding/binary"
	"strconv"
)

// Magic codes open every binary packet.
var (
	MagicReq = [4]byte{0, 'R', 'E', 'Q'}
	MagicRes = [4]byte{0, 'R', 'E', 'S'}
)

// HeaderSize is the size of a binary packet header: magic, type and data length.
const HeaderSize = 12

// Limits from gearmand (libgearman-1.0/limits.h).
const (
	MaxUniqueSize   = 64  // GEARMAN_MAX_UNIQUE_SIZE: longer uniques get ERROR ARGUMENT_TOO_LARGE
	MaxHandleSize   = 63  // GEARMAN_JOB_HANDLE_SIZE 64 including the NUL
	MaxFunctionSize = 512 // GEARMAN_FUNCTION_MAX_SIZE
	MaxClientIDSize = 127 // GEARMAND_SERVER_CON_ID_SIZE 128 including the NUL
)

// Type is a binary packet type.
type Type uint32

// Packet types, numbered as in gearmand's PROTOCOL document.
const (
	CanDo                     Type = 1
	CantDo                    Type = 2
	ResetAbilities            Type = 3
	PreSleep                  Type = 4
	Noop                      Type = 6
	SubmitJob                 Type = 7
	JobCreated                Type = 8
	GrabJob                   Type = 9
	NoJob                     Type = 10
	JobAssign                 Type = 11
	WorkStatus                Type = 12
	WorkComplete              Type = 13
	WorkFail                  Type = 14
	GetStatus                 Type = 15
	EchoReq                   Type = 16
	EchoRes                   Type = 17
	SubmitJobBg               Type = 18
	Error                     Type = 19
	StatusRes                 Type = 20
	SubmitJobHigh             Type = 21
	SetClientID               Type = 22
	CanDoTimeout              Type = 23
	AllYours                  Type = 24
	WorkException             Type = 25
	OptionReq                 Type = 26
	OptionRes                 Type = 27
	WorkData                  Type = 28
	WorkWarning               Type = 29
	GrabJobUniq               Type = 30
	JobAssignUniq             Type = 31
	SubmitJobHighBg           Type = 32
	SubmitJobLow              Type = 33
	SubmitJobLowBg            Type = 34
	SubmitJobSched            Type = 35
	SubmitJobEpoch            Type = 36
	SubmitReduceJob           Type = 37
	SubmitReduceJobBackground Type = 38
	GrabJobAll                Type = 39
	JobAssignAll              Type = 40
	GetStatusUnique           Type = 41
	StatusResUnique           Type = 42

	// WorkCancel (Gear extension, server to worker): "HANDLE". The job was cancelled while the
	// worker ran it; sent only to a worker that asked with OPTION_REQ "cancellation", so no other
	// worker ever receives a type it does not know. Numbered well past gearmand's range.
	WorkCancel Type = 128

	maxType = WorkCancel
)

// typeInfo describes how a packet type is laid out: argc is the number of arguments including the
// last, unterminated one (which may contain NUL bytes).
type typeInfo struct {
	name string
	argc int
}

var types = [maxType + 1]typeInfo{
	CanDo:                     {"CAN_DO", 1},
	CantDo:                    {"CANT_DO", 1},
	ResetAbilities:            {"RESET_ABILITIES", 0},
	PreSleep:                  {"PRE_SLEEP", 0},
	5:                         {"UNUSED", 0},
	Noop:                      {"NOOP", 0},
	SubmitJob:                 {"SUBMIT_JOB", 3},
	JobCreated:                {"JOB_CREATED", 1},
	GrabJob:                   {"GRAB_JOB", 0},
	NoJob:                     {"NO_JOB", 0},
	JobAssign:                 {"JOB_ASSIGN", 3},
	WorkStatus:                {"WORK_STATUS", 3},
	WorkComplete:              {"WORK_COMPLETE", 2},
	WorkFail:                  {"WORK_FAIL", 1},
	GetStatus:                 {"GET_STATUS", 1},
	EchoReq:                   {"ECHO_REQ", 1},
	EchoRes:                   {"ECHO_RES", 1},
	SubmitJobBg:               {"SUBMIT_JOB_BG", 3},
	Error:                     {"ERROR", 2},
	StatusRes:                 {"STATUS_RES", 5},
	SubmitJobHigh:             {"SUBMIT_JOB_HIGH", 3},
	SetClientID:               {"SET_CLIENT_ID", 1},
	CanDoTimeout:              {"CAN_DO_TIMEOUT", 2},
	AllYours:                  {"ALL_YOURS", 0},
	WorkException:             {"WORK_EXCEPTION", 2},
	OptionReq:                 {"OPTION_REQ", 1},
	OptionRes:                 {"OPTION_RES", 1},
	WorkData:                  {"WORK_DATA", 2},
	WorkWarning:               {"WORK_WARNING", 2},
	GrabJobUniq:               {"GRAB_JOB_UNIQ", 0},
	JobAssignUniq:             {"JOB_ASSIGN_UNIQ", 4},
	SubmitJobHighBg:           {"SUBMIT_JOB_HIGH_BG", 3},
	SubmitJobLow:              {"SUBMIT_JOB_LOW", 3},
	SubmitJobLowBg:            {"SUBMIT_JOB_LOW_BG", 3},
	SubmitJobSched:            {"SUBMIT_JOB_SCHED", 8},
	SubmitJobEpoch:            {"SUBMIT_JOB_EPOCH", 4},
	SubmitReduceJob:           {"SUBMIT_REDUCE_JOB", 5},
	SubmitReduceJobBackground: {"SUBMIT_REDUCE_JOB_BACKGROUND", 5},
	GrabJobAll:                {"GRAB_JOB_ALL", 0},
	JobAssignAll:              {"JOB_ASSIGN_ALL", 5},
	GetStatusUnique:           {"GET_STATUS_UNIQUE", 1},
	StatusResUnique:           {"STATUS_RES_UNIQUE", 6},
	WorkCancel:                {"WORK_CANCEL", 1},
}

// Valid reports whether t is a packet type the protocol defines (1..42, 5 being reserved), or
// Gear's WORK_CANCEL.
func (t Type) Valid() bool { return t >= CanDo && t <= StatusResUnique && t != 5 || t == WorkCancel }

// emptyDataOptional reports whether a packet of type t may carry just its handle, meaning empty data.
func (t Type) emptyDataOptional() bool {
	switch t {
	case WorkComplete, WorkData, WorkWarning, WorkException:
		return true
	}
	return false
}

// Argc is the number of NUL-separated arguments of packets of type t (0 for unknown types).
func (t Type) Argc() int {
	if !t.Valid() {
		return 0
	}
	return types[t].argc
}

func (t Type) String() string {
	if t.Valid() {
		return types[t].name
	}
	return "UNKNOWN_" + strconv.FormatUint(uint64(t), 10)
}

// Packet is one decoded binary packet. Args alias the decoder's buffer: they are valid only until the
// next call to Decoder.Next, so a handler that keeps one copies it.
type Packet struct {
	Magic [4]byte
	Type  Type
	Args  [][]byte
}

// Arg returns argument i, or nil if the packet has fewer.
func (p *Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}

// AppendPacket appends the encoding of a packet of type t with magic m and arguments args to buf and
// returns the extended buffer. It never allocates when buf has room.
func AppendPacket(buf []byte, m [4]byte, t Type, args ...[]byte) []byte {
	size := 0
	for i, a := range args {
		size += len(a)
		if i > 0 {
			size++
		}
	}
	buf = append(buf, m[:]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(t))
	buf = binary.BigEndian.AppendUint32(buf, uint32(size))
	for i, a := range args {
		if i > 0 {
			buf = append(buf, 0)
		}
		buf = append(buf, a...)
	}
	return buf
}

// AppendResponse appends a server-to-peer packet (\0RES magic).
func AppendResponse(buf []byte, t Type, args ...[]byte) []byte {
	return AppendPacket(buf, MagicRes, t, args...)
}

// AppendRequest appends a peer-to-server packet (\0REQ magic).
func AppendRequest(buf []byte, t Type, args ...[]byte) []byte {
	return AppendPacket(buf, MagicReq, t, args...)
}
