package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel of the machines murder is tested on has no netem, so latency
// is added with an nfqueue: an iptables rule hands every arriving packet to
// a netlink socket of this process, which accepts it once the latency has
// passed. Only the packet id travels through user space (copy mode meta),
// so the cost is small, and a batch verdict releases every earlier packet
// too, so a lost message cannot strand one.

const queueNum = 0

// nfnetlink_queue constants (linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue      = 3
	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3
	nfqaPacketHdr        = 1
	nfqaVerdictHdr       = 2
	nfqaCfgCmd           = 1
	nfqaCfgParams        = 2
	nfqaCfgQueueMaxlen   = 3
	nfqaCfgMask          = 4
	nfqaCfgFlags         = 5
	nfqnlCfgCmdBind      = 1
	nfqnlCopyMeta        = 1
	nfqaCfgFFailOpen     = 1
	nfAccept             = 1
	solNetlink           = 270
	netlinkNoENOBUFS     = 5
)

type delayed struct {
	id  uint32
	due time.Time
}

type delayer struct {
	fd      int
	latency atomic.Int64
	stopped atomic.Bool
	queue   chan delayed
	done    chan struct{}
	wg      sync.WaitGroup
}

func startDelayer(h *Host, latency time.Duration) (*delayer, error) {
	var fd int
	err := h.inNetns(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: nfqueue socket: %w", err)
	}
	d := &delayer{fd: fd, queue: make(chan delayed, 1<<16), done: make(chan struct{})}
	d.latency.Store(int64(latency))
	if err := d.configure(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	d.wg.Add(2)
	go d.read()
	go d.release()
	return d, nil
}

func (d *delayer) setLatency(l time.Duration) { d.latency.Store(int64(l)) }

func (d *delayer) configure() error {
	if err := unix.Bind(d.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("testbed: nfqueue bind: %w", err)
	}
	unix.SetsockoptInt(d.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	unix.SetsockoptInt(d.fd, solNetlink, netlinkNoENOBUFS, 1)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(d.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("testbed: nfqueue: %w", err)
	}
	var attrs []byte
	attrs = appendAttr(attrs, nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})
	if err := d.request(nfqnlMsgConfig, attrs); err != nil {
		return fmt.Errorf("testbed: nfqueue bind queue: %w", err)
	}
	attrs = appendAttr(nil, nfqaCfgParams, []byte{0, 0, 0, 0, nfqnlCopyMeta})
	attrs = appendAttr(attrs, nfqaCfgQueueMaxlen, be32(1<<14))
	attrs = appendAttr(attrs, nfqaCfgFlags, be32(nfqaCfgFFailOpen))
	attrs = appendAttr(attrs, nfqaCfgMask, be32(nfqaCfgFFailOpen))
	if err := d.request(nfqnlMsgConfig, attrs); err != nil {
		return fmt.Errorf("testbed: nfqueue configure: %w", err)
	}
	return nil
}

// request sends a config message and waits for the kernel's ack.
func (d *delayer) request(typ uint16, attrs []byte) error {
	const seq = 1
	if err := d.send(typ, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, attrs); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for range 50 {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		msgs := buf[:n]
		for len(msgs) >= unix.NLMSG_HDRLEN {
			l := binary.NativeEndian.Uint32(msgs[0:4])
			mt := binary.NativeEndian.Uint16(msgs[4:6])
			if l < unix.NLMSG_HDRLEN || int(l) > len(msgs) {
				break
			}
			if mt == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 {
				code := int32(binary.NativeEndian.Uint32(msgs[16:20]))
				if code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			msgs = msgs[align4(int(l)):]
		}
	}
	return errors.New("no answer from the kernel")
}

func (d *delayer) send(typ uint16, flags uint16, seq uint32, attrs []byte) error {
	msg := make([]byte, unix.NLMSG_HDRLEN+4, unix.NLMSG_HDRLEN+4+len(attrs))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(unix.NLMSG_HDRLEN+4+len(attrs)))
	binary.NativeEndian.PutUint16(msg[4:6], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(msg[6:8], flags)
	binary.NativeEndian.PutUint32(msg[8:12], seq)
	// nfgenmsg: family AF_UNSPEC, version 0, queue number big endian.
	msg[16], msg[17] = unix.AF_UNSPEC, 0
	binary.BigEndian.PutUint16(msg[18:20], queueNum)
	msg = append(msg, attrs...)
	return unix.Sendto(d.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

func (d *delayer) read() {
	defer d.wg.Done()
	defer close(d.queue)
	buf := make([]byte, 1<<20)
	for !d.stopped.Load() {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return
		}
		now := time.Now()
		due := now.Add(time.Duration(d.latency.Load()))
		msgs := buf[:n]
		for len(msgs) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(msgs[0:4]))
			mt := binary.NativeEndian.Uint16(msgs[4:6])
			if l < unix.NLMSG_HDRLEN || l > len(msgs) {
				break
			}
			if mt == nfnlSubsysQueue<<8|nfqnlMsgPacket {
				if id, ok := packetID(msgs[unix.NLMSG_HDRLEN+4 : l]); ok {
					select {
					case d.queue <- delayed{id, due}:
					case <-d.done:
						return
					}
				}
			}
			msgs = msgs[align4(l):]
		}
	}
}

// packetID finds NFQA_PACKET_HDR in a packet message's attributes.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) & 0x3fff
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:8]), true
		}
		attrs = attrs[min(align4(l), len(attrs)):]
	}
	return 0, false
}

func (d *delayer) release() {
	defer d.wg.Done()
	for p := range d.queue {
		if wait := time.Until(p.due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-d.done:
				return
			}
		}
		last := p.id
		// Release everything else that is due in the same verdict.
	drain:
		for {
			select {
			case q, ok := <-d.queue:
				if !ok {
					break drain
				}
				last = q.id
				if time.Until(q.due) > 0 {
					d.verdict(last - 1)
					if wait := time.Until(q.due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-d.done:
							return
						}
					}
				}
			default:
				break drain
			}
		}
		d.verdict(last)
	}
}

func (d *delayer) verdict(id uint32) {
	hdr := append(be32(nfAccept), be32(id)...)
	d.send(nfqnlMsgVerdictBatch, unix.NLM_F_REQUEST, 0, appendAttr(nil, nfqaVerdictHdr, hdr))
}

func (d *delayer) stop() {
	if d.stopped.Swap(true) {
		return
	}
	close(d.done)
	d.wg.Wait()
	unix.Close(d.fd)
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	var hdr [4]byte
	binary.NativeEndian.PutUint16(hdr[0:2], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(hdr[2:4], typ)
	b = append(b, hdr[:]...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func align4(n int) int { return (n + 3) &^ 3 }
