package tracker

import (
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of a RedisStore whose config leaves them zero.
const (
	DefaultRedisPrefix  = "murder:"
	DefaultRedisTimeout = time.Second
)

// redisShards is how many hash tags the keys are spread over: a torrent's
// keys and its shard's torrent index share one tag ({SS}, two hex digits
// of the info hash's first byte), so that one script can touch them all,
// also on a Redis Cluster.
const redisShards = 64

// redisTrim bounds the expired peers one announce removes from each list;
// an announce that finds more leaves the rest to the next ones.
const redisTrim = 64

// RedisStoreConfig configures a RedisStore. Only URL is required.
type RedisStoreConfig struct {
	// URL names the Redis server (see ParseRedisURL).
	URL string
	// Prefix starts every key; "" means DefaultRedisPrefix. Trackers that
	// share a Redis share their swarms when they share the prefix.
	Prefix string
	// PeerTTL, MaxGap and TorrentTTL mean what they mean in
	// MemStoreConfig, with the same defaults.
	PeerTTL, MaxGap, TorrentTTL time.Duration
	// MaxPeers caps the peers of one torrent: a new peer of a full torrent
	// fails with ErrSwarmFull. 0 means DefaultMaxPeers.
	MaxPeers int
	// MaxTorrents caps the torrents announced within TorrentTTL: an
	// announce for a new torrent beyond it fails with ErrStoreFull. Each of
	// the 64 shards of info hashes holds a 64th of it. 0 means
	// DefaultMaxTorrents.
	MaxTorrents int
	// Timeout bounds one store operation, retries included; 0 means
	// DefaultRedisTimeout.
	Timeout time.Duration
	// Now is the clock; nil means time.Now. Trackers sharing a Redis
	// should have clocks that agree to well within PeerTTL.
	Now func() time.Time
	// Logger receives the Redis client's own notes (failed dials) at debug
	// level; nil discards them. The client keeps one logger per process,
	// so the last store made sets it.
	Logger *slog.Logger
}

// RedisStore is a Store in Redis, so that any number of trackers share the
// same swarms and a tracker that stops or restarts loses nothing.
//
// Each torrent has a sorted set of seeders and one of leechers (member:
// peer id, compact address and place; score: when the peer expires), a
// packed copy of each small list (its members end to end), a hash from
// peer id to its record (list, last announce, learned gap, member), a
// counter of completed downloads, and for peers of known place the lists
// of each datacenter and rack, the seeders and gateways counted per
// datacenter, so that peers are chosen by place as in MemStore (see
// redis_announce.lua). One announce is one Lua script, so one round trip:
// it drops up to redisTrim expired peers of each list, checks that the
// peer's entry belongs to the announce's Owner, samples the swarm (with
// ZRANDMEMBER from large lists; from small ones, for a peer of unknown
// place, it returns the packed copies and Announce draws the sample),
// records the peer and sets the keys to expire with their longest-lived
// peer, and the counter TorrentTTL after the torrent's last announce.
// Nothing sweeps; a torrent nobody announces to vanishes by itself. Peers
// expire as in MemStore (two intervals, or two of the longer gaps they are
// seen to keep, learned per peer); an expired peer's record stays until an
// announce to its torrent drops it, so a peer that comes back late keeps
// its gap unless others announced meanwhile.
//
// Each torrent index (one sorted set per shard of info hashes) lists the
// torrents announced within TorrentTTL, for scrapes of every torrent and
// the torrent cap.
type RedisStore struct {
	rdb         redis.UniversalClient
	ap          *redis.AutoPipeliner // pipelines concurrent announces on one connection
	prefix      string
	ttl         int64 // milliseconds
	maxGap      int64 // milliseconds
	keep        int64 // milliseconds
	maxPeers    int
	maxTorrents int // per shard
	timeout     time.Duration
	now         func() time.Time
	shards      [redisShards]string // each shard's key prefix
	// fixed holds the script's arguments that never change, boxed once.
	fixed struct{ ttl, maxGap, keep, maxPeers, maxTorrents, first, remote, trim any }
}

//go:embed redis_announce.lua
var redisAnnounceLua string

//go:embed redis_scrape.lua
var redisScrapeLua string

var (
	redisAnnounce = redis.NewScript(redisAnnounceLua)
	redisScrape   = redis.NewScript(redisScrapeLua)
)

// NewRedisStore returns a RedisStore for cfg. It does not connect: the
// first operation does, and an unreachable Redis fails operations, not the
// constructor.
func NewRedisStore(cfg RedisStoreConfig) (*RedisStore, error) {
	s := &RedisStore{
		prefix:      cfg.Prefix,
		ttl:         cfg.PeerTTL.Milliseconds(),
		maxGap:      cfg.MaxGap.Milliseconds(),
		keep:        cfg.TorrentTTL.Milliseconds(),
		maxPeers:    cfg.MaxPeers,
		maxTorrents: cfg.MaxTorrents,
		timeout:     cfg.Timeout,
		now:         cfg.Now,
	}
	if s.prefix == "" {
		s.prefix = DefaultRedisPrefix
	}
	if s.ttl <= 0 {
		s.ttl = (2 * DefaultInterval).Milliseconds()
	}
	if s.maxGap <= 0 {
		s.maxGap = (30 * time.Minute).Milliseconds()
	}
	if s.keep <= 0 {
		s.keep = (24 * time.Hour).Milliseconds()
	}
	if s.maxPeers <= 0 {
		s.maxPeers = DefaultMaxPeers
	}
	if s.maxTorrents <= 0 {
		s.maxTorrents = DefaultMaxTorrents
	}
	s.maxTorrents = (s.maxTorrents + redisShards - 1) / redisShards
	if s.timeout <= 0 {
		s.timeout = DefaultRedisTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i] = fmt.Sprintf("%s{%02x}:", s.prefix, i)
	}
	s.fixed.ttl, s.fixed.maxGap, s.fixed.keep = s.ttl, s.maxGap, s.keep
	s.fixed.maxPeers, s.fixed.maxTorrents = s.maxPeers, s.maxTorrents
	s.fixed.first, s.fixed.remote, s.fixed.trim = FirstPeers, RemotePeers, redisTrim
	opts, err := ParseRedisURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	// A dead Redis must fail an announce within the timeout, not hang it.
	if opts.DialTimeout == 0 {
		opts.DialTimeout = s.timeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = s.timeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = s.timeout
	}
	if opts.PoolTimeout == 0 {
		opts.PoolTimeout = s.timeout
	}
	opts.ContextTimeoutEnabled = true
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	redis.SetLogger(redisLog{log})
	opts.DisableIdentity = true
	s.rdb = redis.NewUniversalClient(opts)
	// Full duplex: concurrent announces share one connection, written and
	// read at once (faster here than batch by batch; see
	// bench/tracker/README.md).
	apo := redis.DefaultBlockingAutoPipelineOptions()
	apo.FullDuplex = true
	if s.ap, err = s.rdb.AutoPipelineWithOptions(apo); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("tracker: redis: %w", err)
	}
	return s, nil
}

// ParseRedisURL reads a Redis address:
//
//	redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTION=VALUE&...]
//	rediss://...                  the same over TLS
//	unix://[[USER]:PASSWORD@]/PATH[?db=DB&...]
//	redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][/DB]?master_name=NAME[&addr=HOST:PORT...]
//	redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][?addr=HOST:PORT...]
//
// rediss+sentinel and rediss+cluster use TLS. Options are those of
// go-redis (dial_timeout, read_timeout, pool_size, ...); addr adds more
// Sentinels or cluster nodes. The port defaults to 6379.
func ParseRedisURL(s string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("tracker: redis URL: %w", err)
	}
	base, mode, _ := strings.Cut(u.Scheme, "+")
	if base != "redis" && base != "rediss" && (base != "unix" || mode != "") {
		return nil, fmt.Errorf("tracker: redis URL %q: scheme %q, want redis, rediss, unix, redis+sentinel or redis+cluster", u.Redacted(), u.Scheme)
	}
	if base != "unix" && u.Host == "" {
		return nil, fmt.Errorf("tracker: redis URL %q has no host", u.Redacted())
	}
	plain := *u
	plain.Scheme = base
	var o *redis.UniversalOptions
	switch mode {
	case "":
		var opt *redis.Options
		if opt, err = redis.ParseURL(plain.String()); err == nil {
			o = singleOptions(opt)
		}
	case "sentinel":
		var opt *redis.FailoverOptions
		if opt, err = redis.ParseFailoverURL(plain.String()); err == nil {
			if opt.MasterName == "" {
				err = errors.New("master_name=NAME is required")
			}
			o = failoverOptions(opt)
		}
	case "cluster":
		var opt *redis.ClusterOptions
		if opt, err = redis.ParseClusterURL(plain.String()); err == nil {
			o = clusterOptions(opt)
		}
	default:
		err = fmt.Errorf("scheme %q, want redis, rediss, unix, redis+sentinel or redis+cluster", u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("tracker: redis URL %q: %w", u.Redacted(), err)
	}
	return o, nil
}

func singleOptions(o *redis.Options) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password,
		ClientName: o.ClientName, Protocol: o.Protocol, TLSConfig: o.TLSConfig,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
	}
}

func failoverOptions(o *redis.FailoverOptions) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB, Username: o.Username, Password: o.Password,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
		ClientName: o.ClientName, Protocol: o.Protocol, TLSConfig: o.TLSConfig,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
	}
}

func clusterOptions(o *redis.ClusterOptions) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: o.Addrs, IsClusterMode: true, Username: o.Username, Password: o.Password,
		ClientName: o.ClientName, Protocol: o.Protocol, TLSConfig: o.TLSConfig,
		MaxRedirects: o.MaxRedirects, ReadOnly: o.ReadOnly, RouteByLatency: o.RouteByLatency, RouteRandomly: o.RouteRandomly,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, PoolTimeout: o.PoolTimeout,
		MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns, MaxActiveConns: o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
	}
}

// redisLog passes the Redis client's notes to a slog.Logger.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// Close closes the connections to Redis.
func (s *RedisStore) Close() error {
	s.ap.Close()
	return s.rdb.Close()
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("tracker: redis: %w", err)
	}
	return nil
}

// keys returns a torrent's keys: its shard's torrent index, its seeders,
// leechers, peer records and completed downloads. The keys that hold
// members are named after the members' format (":2:", the second): those
// of an older format are never read and expire by themselves.
func (s *RedisStore) keys(ih *[20]byte) []string {
	base := s.shards[int(ih[0])%redisShards]
	// One string holds all five keys (about 270 bytes with the default
	// prefix).
	var buf [384]byte
	b := append(buf[:0], base...)
	b = append(b, "torrents"...)
	ends := [5]int{len(b)}
	for i, suffix := range [...]string{":2:seeders", ":2:leechers", ":2:peers", ":downloaded"} {
		b = append(b, base...)
		b = hex.AppendEncode(b, ih[:])
		b = append(b, suffix...)
		ends[i+1] = len(b)
	}
	all := string(b)
	return []string{all[:ends[0]], all[ends[0]:ends[1]], all[ends[1]:ends[2]], all[ends[2]:ends[3]], all[ends[3]:ends[4]]}
}

// Announce implements Store.
func (s *RedisStore) Announce(ctx context.Context, a *PeerAnnounce, dst []Peer) ([]Peer, ScrapeStats, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	seeder := "0"
	if a.Seeder {
		seeder = "1"
	}
	keys := s.keys(&a.InfoHash)
	// The info hash, peer id, member suffix and owner share one string.
	var buf [128]byte
	b := append(buf[:0], a.InfoHash[:]...)
	b = append(b, a.Peer.ID[:]...)
	b = appendRedisPeer(b, a.Peer)
	peerEnd := len(b)
	b = binary.LittleEndian.AppendUint64(b, a.Owner)
	packed := string(b)
	var gap any = int64(0)
	if g := clientGap(a.Peer.ID); g > 0 {
		gap = min(g.Milliseconds(), s.maxGap)
	}
	res, err := redisAnnounce.Run(ctx, s.ap, keys,
		packed[:20], packed[20:40], packed[40:peerEnd],
		seeder, a.Event, a.NumWant, s.now().UnixMilli(), s.fixed.ttl, s.fixed.maxGap,
		gap, s.fixed.keep, s.fixed.maxPeers, s.fixed.maxTorrents,
		rand.Int64N(1<<50), keys[1][:len(keys[1])-len("seeders")], s.fixed.first, s.fixed.remote,
		a.Peer.Place.Datacenter, a.Peer.Place.Rack, s.fixed.trim, packed[peerEnd:]).Slice()
	if err != nil {
		if refusal, ok := redisRefusals[err.Error()]; ok {
			return dst, ScrapeStats{}, refusal
		}
		return dst, ScrapeStats{}, fmt.Errorf("tracker: redis announce: %w", err)
	}
	st, err := redisStats(res)
	if err != nil {
		return dst, ScrapeStats{}, err
	}
	if len(res) > 3 {
		if k, ok := res[3].(int64); ok {
			return drawRedisPeers(dst, res[4:], int(k), &a.Peer.ID, st)
		}
	}
	for _, m := range res[3:] {
		p, ok := parseRedisMember(m)
		if !ok {
			return dst, ScrapeStats{}, fmt.Errorf("tracker: redis announce: bad peer %q", m)
		}
		dst = append(dst, p)
	}
	return dst, st, nil
}

// drawRedisPeers appends to dst up to k peers drawn at random from the
// packed lists (members end to end, see redis_announce.lua), never the
// peer self.
func drawRedisPeers(dst []Peer, packed []any, k int, self *[20]byte, st ScrapeStats) ([]Peer, ScrapeStats, error) {
	var buf [128]string
	cand := buf[:0]
	for _, v := range packed {
		b, ok := v.(string)
		if !ok {
			return dst, ScrapeStats{}, fmt.Errorf("tracker: redis announce: packed peers are %T, want a string", v)
		}
		for len(b) > 0 {
			n := redisMemberLen(b)
			if n == 0 {
				return dst, ScrapeStats{}, fmt.Errorf("tracker: redis announce: bad packed peers %q", b)
			}
			if b[:20] != string(self[:]) {
				cand = append(cand, b[:n])
			}
			b = b[n:]
		}
	}
	for i := range min(k, len(cand)) {
		j := i + rand.IntN(len(cand)-i)
		cand[i], cand[j] = cand[j], cand[i]
		p, ok := parseRedisMember(cand[i])
		if !ok {
			return dst, ScrapeStats{}, fmt.Errorf("tracker: redis announce: bad peer %q", cand[i])
		}
		dst = append(dst, p)
	}
	return dst, st, nil
}

// redisRefusals maps the announce script's error replies to the store's
// errors.
var redisRefusals = map[string]error{
	"murder: too many torrents": ErrStoreFull,
	"murder: too many peers":    ErrSwarmFull,
	"murder: not owner":         ErrNotOwner,
}

// redisStats reads the counts that start a script's reply.
func redisStats(res []any) (ScrapeStats, error) {
	if len(res) < 3 {
		return ScrapeStats{}, fmt.Errorf("tracker: redis: reply of %d values, want at least 3", len(res))
	}
	var n [3]int64
	for i := range n {
		v, ok := res[i].(int64)
		if !ok {
			return ScrapeStats{}, fmt.Errorf("tracker: redis: count %d is %T, want an integer", i, res[i])
		}
		n[i] = v
	}
	return ScrapeStats{Complete: int(n[0]), Incomplete: int(n[1]), Downloaded: int(n[2])}, nil
}

// appendRedisPeer appends what follows the peer id in the store's member
// of p (see redis_announce.lua): the length of the compact address, the
// address, the length of the place and the place.
func appendRedisPeer(dst []byte, p Peer) []byte {
	n := len(dst)
	dst = append(dst, 0)
	dst = appendCompact(dst, p.Addr)
	dst[n] = byte(len(dst) - n - 1)
	place := p.Place.String()
	dst = append(dst, byte(len(place)))
	return append(dst, place...)
}

// redisMemberLen returns the length of the member that starts b, 0 when b
// does not start with one.
func redisMemberLen(b string) int {
	if len(b) < 21 {
		return 0
	}
	n := 21 + int(b[20])
	if len(b) <= n {
		return 0
	}
	n += 1 + int(b[n])
	if len(b) < n {
		return 0
	}
	return n
}

// parseRedisMember reads a peer as the store keeps it: the peer id, the
// length of the compact address (6 for IPv4, 18 for IPv6), the address,
// the length of the place and the place.
func parseRedisMember(m any) (Peer, bool) {
	b, ok := m.(string)
	if !ok || redisMemberLen(b) != len(b) {
		return Peer{}, false
	}
	var p Peer
	copy(p.ID[:], b)
	n := int(b[20])
	b = b[21:]
	if n != 6 && n != 18 {
		return Peer{}, false
	}
	var ip netip.Addr
	if n == 6 {
		ip = netip.AddrFrom4([4]byte([]byte(b[:4])))
	} else {
		ip = netip.AddrFrom16([16]byte([]byte(b[:16])))
	}
	p.Addr = netip.AddrPortFrom(ip, uint16(b[n-2])<<8|uint16(b[n-1]))
	place, err := ParsePlace(b[n+1:])
	if err != nil {
		return Peer{}, false
	}
	p.Place = place
	return p, true
}

// Scrape implements Store. Scraping every torrent reads every shard's
// torrent index first.
func (s *RedisStore) Scrape(ctx context.Context, infoHashes [][20]byte) (map[[20]byte]ScrapeStats, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if len(infoHashes) == 0 {
		var err error
		if infoHashes, err = s.torrents(ctx); err != nil {
			return nil, err
		}
	}
	now := s.now().UnixMilli()
	out := make(map[[20]byte]ScrapeStats, len(infoHashes))
	for try := 0; ; try++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range infoHashes {
				k := s.keys(&infoHashes[i])
				redisScrape.EvalSha(ctx, p, []string{k[0], k[1], k[2], k[4]}, now, string(infoHashes[i][:]), s.keep)
			}
			return nil
		})
		if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err = s.loadScript(ctx, redisScrape); err == nil {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("tracker: redis scrape: %w", err)
		}
		for i, c := range cmds {
			res, err := c.(*redis.Cmd).Slice()
			if err != nil {
				return nil, fmt.Errorf("tracker: redis scrape: %w", err)
			}
			st, err := redisStats(res)
			if err != nil {
				return nil, err
			}
			if st != (ScrapeStats{}) {
				out[infoHashes[i]] = st
			}
		}
		return out, nil
	}
}

// loadScript loads sc into Redis, on every node of a cluster.
func (s *RedisStore) loadScript(ctx context.Context, sc *redis.Script) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return sc.Load(ctx, c).Err()
		})
	}
	return sc.Load(ctx, s.rdb).Err()
}

// torrents lists the torrents of every shard's index.
func (s *RedisStore) torrents(ctx context.Context) ([][20]byte, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range redisShards {
			p.ZRange(ctx, s.shards[i]+"torrents", 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tracker: redis scrape: %w", err)
	}
	var out [][20]byte
	for _, c := range cmds {
		for _, m := range c.(*redis.StringSliceCmd).Val() {
			if len(m) == 20 {
				out = append(out, [20]byte([]byte(m)))
			}
		}
	}
	return out, nil
}
