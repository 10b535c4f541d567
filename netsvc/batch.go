package netsvc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batchSender sends nf_tables batches without one acknowledgement per message.
//
// github.com/google/nftables asks the kernel to acknowledge every message and
// reads the acknowledgements one recvmsg at a time: for a full Sync of 10,000
// services that was half of the CPU time. Here the library only encodes: its
// connection is dialled through a recorder (nftables.WithTestDial) that keeps the
// batch and answers the library's reads with synthetic acknowledgements. The
// batch is then written with one sendmsg on a real socket, with the acknowledge
// flag on its last message only. The kernel processes a netlink batch
// synchronously inside sendmsg, so when sendmsg returns every answer — an error
// for each failing message and the last message's acknowledgement — is already
// queued on the socket and is read without waiting.
type batchSender struct {
	sock    *netlink.Conn
	raw     syscall.RawConn
	pending []netlink.Message
	buf     []byte
}

func newBatchSender(netnsFd int) (*batchSender, error) {
	sock, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd})
	if err != nil {
		return nil, err
	}
	if err := bigBuffers(sock); err != nil {
		_ = sock.Close()
		return nil, err
	}
	raw, err := sock.SyscallConn()
	if err != nil {
		_ = sock.Close()
		return nil, err
	}
	// Error answers carry only the failing message's header, not the message.
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	}); err != nil || serr != nil {
		_ = sock.Close()
		return nil, errors.Join(err, serr)
	}
	return &batchSender{sock: sock, raw: raw}, nil
}

// encoder returns a fresh nftables connection whose Flush records its batch into
// s instead of sending it.
func (s *batchSender) encoder() (*nftables.Conn, error) {
	return nftables.New(nftables.WithTestDial(s.record))
}

// record is the recorder behind encoder: a batch is kept; a read gets an
// acknowledgement with error 0.
func (s *batchSender) record(req []netlink.Message) ([]netlink.Message, error) {
	if req != nil {
		s.pending = append(s.pending[:0], req...)
		return nil, nil
	}
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4+16)}}, nil
}

func (s *batchSender) close() error { return s.sock.Close() }

// flush sends the batch the encoder recorded and returns the kernel's verdict: nil
// when it committed, else the errors of the failing messages.
func (s *batchSender) flush() error {
	msgs := s.pending
	s.pending = nil
	if len(msgs) < 3 { // batch begin, at least one message, batch end
		return nil
	}
	size := 0
	for _, m := range msgs {
		size += nlmsgAlign(16 + len(m.Data))
	}
	buf := s.buf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	last := uint32(len(msgs) - 1) // sequence number of the last message before batch end
	for i, m := range msgs {
		flags := m.Header.Flags &^ netlink.Acknowledge
		if uint32(i) == last-1 {
			flags |= netlink.Acknowledge
		}
		n := 16 + len(m.Data)
		buf = binary.NativeEndian.AppendUint32(buf, uint32(n))
		buf = binary.NativeEndian.AppendUint16(buf, uint16(m.Header.Type))
		buf = binary.NativeEndian.AppendUint16(buf, uint16(flags))
		buf = binary.NativeEndian.AppendUint32(buf, uint32(i)) // sequence: the message's index
		buf = binary.NativeEndian.AppendUint32(buf, 0)
		buf = append(buf, m.Data...)
		for pad := nlmsgAlign(n) - n; pad > 0; pad-- {
			buf = append(buf, 0)
		}
	}
	s.buf = buf[:0]
	if size > 64<<20 {
		s.buf = nil // do not keep a huge buffer for the small batches that follow
	}

	var serr error
	err := s.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("send batch of %d messages: %w", len(msgs)-2, err)
	}

	var errs []error
	acked := false
	rbuf := make([]byte, 1<<16)
	for {
		var n int
		var rerr error
		if err := s.raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), rbuf, unix.MSG_DONTWAIT)
			return true // never wait: everything is queued already
		}); err != nil {
			return err
		}
		if errors.Is(rerr, unix.EAGAIN) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read batch answers: %w", rerr)
		}
		answers, perr := syscall.ParseNetlinkMessage(rbuf[:n])
		if perr != nil {
			return fmt.Errorf("parse batch answers: %w", perr)
		}
		for _, a := range answers {
			if a.Header.Type != unix.NLMSG_ERROR || len(a.Data) < 4 {
				continue
			}
			seq := a.Header.Seq
			if seq == last-1 {
				acked = true
			}
			if code := int32(binary.NativeEndian.Uint32(a.Data[:4])); code != 0 {
				what := "message"
				if int(seq) < len(msgs) {
					what = msgTypeName(msgs[seq].Header.Type)
				}
				errs = append(errs, fmt.Errorf("%s (message %d of %d): %w", what, seq, len(msgs)-2, syscall.Errno(-code)))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !acked {
		return fmt.Errorf("the kernel did not acknowledge the batch of %d messages", len(msgs)-2)
	}
	return nil
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

func msgTypeName(t netlink.HeaderType) string {
	switch int(t) & 0xff {
	case unix.NFT_MSG_NEWTABLE:
		return "new table"
	case unix.NFT_MSG_DELTABLE:
		return "delete table"
	case unix.NFT_MSG_NEWCHAIN:
		return "new chain"
	case unix.NFT_MSG_DELCHAIN:
		return "delete chain"
	case unix.NFT_MSG_NEWRULE:
		return "new rule"
	case unix.NFT_MSG_DELRULE:
		return "delete rule"
	case unix.NFT_MSG_NEWSET:
		return "new set"
	case unix.NFT_MSG_DELSET:
		return "delete set"
	case unix.NFT_MSG_NEWSETELEM:
		return "new set elements"
	case unix.NFT_MSG_DELSETELEM:
		return "delete set elements"
	}
	return fmt.Sprintf("message type %d", t)
}
