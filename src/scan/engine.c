/*
 * scan's per-line loop in C: lines, syslog dates, PCRE2 matches, and Fail2ban's session logic
 * (mlfid merge) for lean matchers. Compiled at run time by the TinyCC inside Bun (bun:ffi cc):
 * no compiler on the host, no library shipped beside the binary. It mirrors, step by step,
 * FilterMatcher.processBytes, conclude and merge in lean mode and ChunkRun.feedBytes/record
 * (src/filter/matcher.ts, src/scan/process.ts); engine.ts builds each filter's tables from the
 * compiled filter, and everything this file does not know (another date shape, a PCRE2 error,
 * a day not yet in the date table, an id that is not a plain IPv4 address) goes back to that
 * JavaScript, which hands the line's dict back here (run_stage2) so the sessions live in one
 * place. The differential tests hold the two to the same results (test/engine.test.ts).
 */
#include <stdint.h>
#include <stddef.h>

void *memchr(const void *, int, size_t);
void *memcpy(void *, const void *, size_t);
void *memmove(void *, const void *, size_t);
int memcmp(const void *, const void *, size_t);
void *malloc(size_t);
void *calloc(size_t, size_t);
void *realloc(void *, size_t);
void free(void *);

typedef int (*match_fn)(void *code, const unsigned char *subject, size_t length, size_t start,
                        uint32_t options, void *md, void *ctx);

#define UNSET ((size_t)-1)
#define NO_MATCH (-1)
#define MAXK 24
#define MLFID_MAX 1000
#define MLFID_TTL 300.0
#define NBUCKET 4096
#define NDAYS (12 * 31)
#define MAXNAMES 32

/* The keys the session logic reads (see matcher.ts: INTERNAL, SESSION_KEYS); alt_ keys follow. */
enum { K_MLFID, K_NOFAIL, K_MLFFORGET, K_MLFGAINED, K_MLFPENDING, K_USER, K_IP4, K_IP6, K_DNS, K_FID };

/* run_feed's flags: the block has NUL bytes, CR bytes */
enum { B_NUL = 1, B_CR = 2 };

/* run_feed's answers */
enum { ST_DONE = 0, ST_DAY = 1, ST_LINE = 2, ST_FLUSH = 3 };

/* host hints of text records */
enum { H_NONE = 0, H_IP4 = 1, H_IP6 = 2, H_DNS = 3 };

/* info[] slots shared with engine.ts */
enum {
  I_POS, I_FI, I_START, I_STOP, I_MONTH, I_DAY, I_NREC, I_TLEN, I_NEED,
  I_LINES, I_BINARY, I_NODATE, I_FIRST, I_LAST, I_DATED, I_OVERFLOW, I_NTEXT, I_NNEW, I_INVALID,
  I_SIZE
};

/* The longest value a session holds (a record's host or fid can come from one). */
static int32_t max_owned;

/* Bytes a session keeps in place per value (longer ones are allocated). */
#define INL 48

/* A value of a dict: undefined (set = 0) or a string of len bytes (heap: allocated here). */
typedef struct { const unsigned char *p; int32_t len; int16_t set; int16_t heap; } Val;

/*
 * A dict: the line's own (scratch: values point into the line) or a session's (inl: its
 * values are copies, in inl[k] when short; inl[MAXK] holds user0).
 */
typedef struct {
  Val v[MAXK];
  int nusers; /* distinct users: 0, 1, or 2 for two or more */
  Val user0;
  unsigned char (*inl)[INL];
} Dict;

typedef struct Sess {
  struct Sess *hnext, *prev, *next; /* hnext also links the pool of free sessions */
  Val key;
  uint32_t hash;
  double expires;
  Dict d;
  unsigned char inl[MAXK + 2][INL]; /* inl[MAXK + 1]: the key */
} Sess;

typedef struct { void *code; void *md; size_t *ov; } Rx;

/* What a compiled filter needs here; built once per process by engine.ts. */
typedef struct {
  match_fn match;
  int nk;
  int haspref;
  Rx pref;
  int hashead;
  Rx head; /* the prefregex without its closing content group (see spec_head) */
  int fast; /* the head is the syslog prefix fast_head reads (see spec_fast) */
  int fgrouped, ftail, fn;
  unsigned char *fname[MAXNAMES];
  int32_t flen[MAXNAMES];
  int ncontent;
  int32_t content[8];
  int nfail;
  Rx *fail;
  int32_t **prog; /* per failregex: see build() */
  unsigned char **lits; /* per failregex: [n][len, bytes]...; NULL: no constraint */
  int32_t cstart[130]; /* candidates per first byte (128: any other byte) */
  int32_t *cand;
  double base[NDAYS * 24]; /* the time of hh:00:00 per month, day, hour */
  unsigned char dstate[NDAYS * 24]; /* 0: not known yet, 1: base[] holds, 2: JavaScript decides */
} Spec;

/*
 * The ids of a source (a scan process), numbered once for all its chunk runs: IPv4 ids → their
 * numbers (open addressing, an 8-byte slot holding both: one cache line per look), and the
 * counter every id of the source is numbered by, the ones JavaScript keeps included (ids_next).
 */
typedef struct {
  uint64_t *slot; /* (address << 32) | (number + 1); 0: empty */
  uint32_t hcap, hcount;
  uint32_t nids;
} Ids;

/* A filter's state in one chunk run. */
typedef struct {
  Spec *spec;
  Sess *bucket[NBUCKET];
  Sess *first, *last;
  int size;
  double last_time; /* the last date seen (NaN: none) */
  Dict scratch;
  Sess *dead; /* a session deleted while its dict is still in use */
  Sess *pool; /* sessions to reuse */
} FState;

typedef struct {
  int nf;
  FState *f;
  double now;
  double *info;
  double *rtime;
  uint32_t *rid; /* the id's number in the run (IPv4 ids: see id4), 0 for a text record */
  uint8_t *rfilter;
  int32_t *rtext; /* offset of a text record in text[], -1 for an IPv4 id */
  int32_t *tpos;  /* the text records' positions */
  int32_t ntext;
  uint32_t *nv4;  /* IPv4 ids numbered since the last drain, and their numbers */
  uint32_t *nvidx;
  int32_t nnew;
  int32_t cap, nrec;
  Ids *ids;
  /*
   * Hosts JavaScript has identified (run_learn): filter, hint, host and <F-ID> bytes as a text
   * record holds them → the id's number, or -1 (not a valid host). Open addressing; hslot + 1,
   * 0 empty. A host met again needs no text record: an address repeats in a log.
   */
  uint32_t *hslot;
  uint32_t hscap, hsn;
  int32_t *hsval;
  uint32_t *hshash;
  int64_t *hsat; /* the key's bytes in hsbytes: [fi][text record bytes] */
  unsigned char *hsbytes;
  int64_t hsblen, hsbcap;
  int64_t invalid; /* failures of hosts known not to be valid */
  double *perf; /* failures the engine numbered itself, per filter */
  unsigned char *text;
  int32_t tcap, tlen;
  int32_t dated;
  int32_t overflow;
  int64_t lines, binary, nodate;
  double first, last;
} Run;

static void put_info(Run *r);

static int isnan_(double x) { return x != x; }

static double nan_(void) {
  union { uint64_t u; double d; } v;
  v.u = 0x7ff8000000000000ULL;
  return v.d;
}

static int truthy(const Val *v) { return v->set && v->len > 0; }

static int same(const Val *a, const Val *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* --------------------------------------------------------------------------------------------
 * Specs */

Spec *spec_new(void *match, int nk, int nfail) {
  Spec *s = calloc(1, sizeof(Spec));
  s->match = (match_fn)match;
  s->nk = nk;
  s->nfail = nfail;
  s->fail = calloc(nfail ? nfail : 1, sizeof(Rx));
  s->prog = calloc(nfail ? nfail : 1, sizeof(int32_t *));
  s->lits = calloc(nfail ? nfail : 1, sizeof(unsigned char *));
  return s;
}

void spec_pref(Spec *s, void *code, void *md, void *ov, int32_t *content, int ncontent) {
  s->haspref = 1;
  s->pref.code = code;
  s->pref.md = md;
  s->pref.ov = ov;
  s->ncontent = ncontent > 8 ? 8 : ncontent;
  for (int k = 0; k < s->ncontent; k++) s->content[k] = content[k];
}

/*
 * The prefregex without the content group that closes it, X([^\n\r]+)$ -> X(?=[^\n\r]): on a
 * line with no CR, the same match and groups, the content running from its end to the line's.
 * PCRE2 no longer runs through the content twice: about half the prefregex's time (sshd).
 */
void spec_head(Spec *s, void *code, void *md, void *ov) {
  s->hashead = 1;
  s->head.code = code;
  s->head.md = md;
  s->head.ov = ov;
}

/*
 * The head is the syslog prefix of src/filter/syslog-head.ts: the daemon's names as
 * [n][len, bytes]..., whether the prefix is group 1, whether sshd's "error: " tail follows.
 */
void spec_fast(Spec *s, unsigned char *names, int grouped, int tail) {
  int32_t n, len;
  memcpy(&n, names, 4);
  if (n < 1 || n > MAXNAMES) return;
  unsigned char *q = names + 4;
  for (int k = 0; k < n; k++) {
    memcpy(&len, q, 4);
    s->fname[k] = malloc(len + 1);
    memcpy(s->fname[k], q + 4, len);
    s->flen[k] = len;
    q += 4 + len;
  }
  s->fn = n;
  s->fgrouped = grouped;
  s->ftail = tail;
  s->fast = 1;
}

void spec_fail(Spec *s, int i, void *code, void *md, void *ov, int32_t *prog, int plen,
               unsigned char *lits, int llen) {
  s->fail[i].code = code;
  s->fail[i].md = md;
  s->fail[i].ov = ov;
  s->prog[i] = malloc(plen * sizeof(int32_t) + 4);
  memcpy(s->prog[i], prog, plen * sizeof(int32_t));
  if (llen > 0) {
    s->lits[i] = malloc(llen);
    memcpy(s->lits[i], lits, llen);
  }
}

void spec_cands(Spec *s, int32_t *start, int32_t *list, int n) {
  memcpy(s->cstart, start, 130 * sizeof(int32_t));
  s->cand = malloc(n * sizeof(int32_t) + 4);
  memcpy(s->cand, list, n * sizeof(int32_t));
}

/* One hour of the date table: `state` 1 with its base time, or 2 (JavaScript dates it). */
void spec_hour(Spec *s, int month, int day, int hour, double base, int state) {
  int idx = ((month - 1) * 31 + day - 1) * 24 + hour;
  s->base[idx] = base;
  s->dstate[idx] = (unsigned char)state;
}

/* --------------------------------------------------------------------------------------------
 * Runs */

Ids *ids_new(void) {
  Ids *x = calloc(1, sizeof(Ids));
  if (!x) return 0;
  x->hcap = 1024;
  x->slot = calloc(x->hcap, sizeof(uint64_t));
  return x;
}

void ids_free(Ids *x) {
  free(x->slot);
  free(x);
}

/* Numbers handed out so far. */
uint32_t ids_count(Ids *x) { return x->nids; }

/* The next number, for an id JavaScript keeps (not an IPv4 address). */
uint32_t ids_next(Ids *x) { return x->nids++; }

static uint32_t hash32(uint32_t v) {
  uint64_t h = (uint64_t)v * 0x9e3779b97f4a7c15ULL;
  return (uint32_t)(h >> 32);
}

/* The number of an IPv4 id, the next one when it is new (then it equals ids_count before). */
uint32_t ids_v4(Ids *x, int32_t bits) {
  uint32_t v4 = (uint32_t)bits;
  uint64_t key = (uint64_t)v4 << 32;
  uint32_t mask = x->hcap - 1;
  uint32_t i = hash32(v4) & mask;
  for (uint64_t e; (e = x->slot[i]); i = (i + 1) & mask)
    if ((e & ~0xffffffffULL) == key) return (uint32_t)e - 1;
  uint32_t n = x->nids++;
  x->slot[i] = key | ((uint64_t)n + 1);
  if (++x->hcount * 2 > x->hcap) {
    uint32_t cap = x->hcap * 2;
    uint64_t *slot = calloc(cap, sizeof(uint64_t));
    for (uint32_t j = 0; j < x->hcap; j++) {
      uint64_t e = x->slot[j];
      if (!e) continue;
      uint32_t k = hash32((uint32_t)(e >> 32)) & (cap - 1);
      while (slot[k]) k = (k + 1) & (cap - 1);
      slot[k] = e;
    }
    free(x->slot);
    x->slot = slot;
    x->hcap = cap;
  }
  return n;
}

Run *run_new(Spec **specs, int nf, double now, Ids *ids, double *info, double *rtime, uint32_t *rid,
             uint8_t *rfilter, int32_t *rtext, int32_t *tpos, uint32_t *nv4, uint32_t *nvidx, int cap,
             unsigned char *text, int tcap) {
  Run *r = calloc(1, sizeof(Run));
  r->ids = ids;
  r->tpos = tpos;
  r->nv4 = nv4;
  r->nvidx = nvidx;
  r->perf = calloc(nf, sizeof(double));
  r->nf = nf;
  r->f = calloc(nf, sizeof(FState));
  for (int i = 0; i < nf; i++) {
    r->f[i].spec = specs[i];
    r->f[i].last_time = nan_();
  }
  r->now = now;
  r->info = info;
  r->rtime = rtime;
  r->rid = rid;
  r->rfilter = rfilter;
  r->rtext = rtext;
  r->cap = cap;
  r->text = text;
  r->tcap = tcap;
  r->first = nan_();
  r->last = nan_();
  return r;
}

/* A bigger text buffer (the records already drained). */
void run_text(Run *r, unsigned char *text, int tcap) {
  r->text = text;
  r->tcap = tcap;
}

/* Records drained by JavaScript. */
void run_drained(Run *r) {
  r->nrec = 0;
  r->tlen = 0;
  r->ntext = 0;
  r->nnew = 0;
}

/* The number of an IPv4 id (see ids_v4); a new one is noted in nv4/nvidx for JavaScript. */
uint32_t run_id4(Run *r, int32_t bits) {
  uint32_t v4 = (uint32_t)bits;
  uint32_t before = r->ids->nids;
  uint32_t n = ids_v4(r->ids, bits);
  if (n >= before) {
    r->nv4[r->nnew] = v4;
    r->nvidx[r->nnew++] = n;
  }
  return n;
}

double run_count(Run *r, int fi) { return r->perf[fi]; }

int run_nnew(Run *r) { return r->nnew; }

static void val_clear(Val *v) {
  if (v->heap) free((void *)v->p);
  v->p = 0;
  v->len = 0;
  v->set = 0;
  v->heap = 0;
}

/* dst = a copy of src, in `inl` when it fits */
static void val_store(Val *dst, unsigned char *inl, const Val *src) {
  if (!src->set) {
    val_clear(dst);
    return;
  }
  int32_t n = src->len;
  if (n > max_owned) max_owned = n;
  const unsigned char *old = dst->heap ? dst->p : 0;
  if (n <= INL) {
    if (src->p != inl) memmove(inl, src->p, n);
    dst->p = inl;
    dst->heap = 0;
  } else {
    unsigned char *p = malloc(n);
    memcpy(p, src->p, n);
    dst->p = p;
    dst->heap = 1;
  }
  if (old) free((void *)old);
  dst->len = n;
  dst->set = 1;
}

/* Sets key k of a dict: a copy in a session's, the value itself in the line's. */
static void dict_put(Dict *d, int k, const Val *v) {
  if (d->inl) val_store(&d->v[k], d->inl[k], v);
  else d->v[k] = *v;
}

static void dict_del(Dict *d, int k) {
  if (d->inl) val_clear(&d->v[k]);
  else d->v[k].set = 0;
}

/*
 * Sessions a run ended with, kept for the process's next run (a scan process runs chunk after
 * chunk): freed, their pages went back to the system and came again, zeroed, one page fault
 * each (1000 sessions of 1.7 KB per filter and chunk; 1M-line auth.log: ~2,300 faults).
 */
#define SPARE_MAX 4096
static Sess *spare;
static int nspare;

static Sess *sess_alloc(FState *f) {
  Sess *e = f->pool;
  if (e) f->pool = e->hnext;
  else if (spare) {
    e = spare;
    spare = e->hnext;
    nspare--;
  } else e = malloc(sizeof(Sess));
  int nk = f->spec->nk;
  for (int k = 0; k < nk; k++) e->d.v[k] = (Val){0, 0, 0, 0};
  e->d.user0 = (Val){0, 0, 0, 0};
  e->d.nusers = 0;
  e->d.inl = e->inl;
  e->key = (Val){0, 0, 0, 0};
  e->hnext = e->prev = e->next = 0;
  return e;
}

/* A session's memory back (to the pool). */
static void sess_free(FState *f, Sess *e) {
  int nk = f->spec->nk;
  for (int k = 0; k < nk; k++)
    if (e->d.v[k].heap) val_clear(&e->d.v[k]);
  if (e->d.user0.heap) val_clear(&e->d.user0);
  if (e->key.heap) val_clear(&e->key);
  e->hnext = f->pool;
  f->pool = e;
}

void run_free(Run *r) {
  for (int i = 0; i < r->nf; i++) {
    FState *f = &r->f[i];
    for (Sess *e = f->first; e;) {
      Sess *n = e->next;
      sess_free(f, e);
      e = n;
    }
    if (f->dead) sess_free(f, f->dead);
    for (Sess *e = f->pool; e;) {
      Sess *n = e->hnext;
      if (nspare < SPARE_MAX) {
        e->hnext = spare;
        spare = e;
        nspare++;
      } else free(e);
      e = n;
    }
  }
  free(r->f);
  free(r->hslot);
  free(r->hsval);
  free(r->hshash);
  free(r->hsat);
  free(r->hsbytes);
  free(r->perf);
  free(r);
}

double run_last_time(Run *r, int fi) { return r->f[fi].last_time; }

void run_set_last_time(Run *r, int fi, double t) { r->f[fi].last_time = t; }

/* --------------------------------------------------------------------------------------------
 * Sessions: SessionCache (a map in insertion order) */

static uint32_t hash_bytes(const unsigned char *p, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    h = (h ^ *(const uint64_t *)(p + i)) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  for (; i < n; i++) w = (w << 8) | p[i];
  h = (h ^ w) * 0xff51afd7ed558ccdULL;
  h ^= h >> 29;
  return (uint32_t)h;
}

static Sess *sess_get(FState *f, const Val *key, uint32_t h) {
  for (Sess *e = f->bucket[h & (NBUCKET - 1)]; e; e = e->hnext)
    if (e->hash == h && same(&e->key, key)) return e;
  return 0;
}

/* Unlinks e; frees it unless its dict is still in use (`keep`: it is freed by the next call). */
static void sess_delete(FState *f, Sess *e, int keep) {
  Sess **pp = &f->bucket[e->hash & (NBUCKET - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  if (e->prev) e->prev->next = e->next;
  else f->first = e->next;
  if (e->next) e->next->prev = e->prev;
  else f->last = e->prev;
  f->size--;
  if (keep) {
    if (f->dead) sess_free(f, f->dead);
    f->dead = e;
  } else sess_free(f, e);
}

/* cacheSet for a key that is not in the cache: a new session holding a copy of d. */
static Sess *sess_set(FState *f, const Val *key, uint32_t h, Dict *d, double now) {
  if (f->size >= MLFID_MAX) {
    for (Sess *e = f->first; e; e = f->first) {
      double exp = e->expires;
      sess_delete(f, e, 0);
      if (exp > now && f->size < MLFID_MAX) break;
    }
  }
  Sess *e = sess_alloc(f);
  val_store(&e->key, e->inl[MAXK + 1], key);
  e->hash = h;
  e->expires = now + MLFID_TTL;
  int nk = f->spec->nk;
  for (int k = 0; k < nk; k++)
    if (d->v[k].set) val_store(&e->d.v[k], e->inl[k], &d->v[k]);
  e->d.nusers = d->nusers;
  if (d->nusers) val_store(&e->d.user0, e->inl[MAXK], &d->user0);
  e->prev = f->last;
  if (f->last) f->last->next = e;
  else f->first = e;
  f->last = e;
  int b = h & (NBUCKET - 1);
  e->hnext = f->bucket[b];
  f->bucket[b] = e;
  f->size++;
  return e;
}

/* updateUsers: the distinct users of a session (only whether there are two matters here) */
static void users_add(Dict *d, const Val *user) {
  if (!user->set || user->len == 0 || d->nusers >= 2) return;
  if (d->nusers == 0) {
    if (d->inl) val_store(&d->user0, d->inl[MAXK], user);
    else d->user0 = *user;
    d->nusers = 1;
  } else if (!same(&d->user0, user)) d->nusers = 2;
}

static const Val ONE = {(const unsigned char *)"1", 1, 1, 0};

/* merge (lean): the session dict the line's failure continues, or the line's own dict. */
static Dict *merge(FState *f, Dict *d, const int32_t *upd, int nupd, double now) {
  Val key = d->v[K_MLFID];
  uint32_t h = hash_bytes(key.p, key.len);
  Sess *cached = sess_get(f, &key, h);
  if (cached && !(cached->expires > now)) {
    sess_delete(f, cached, 0);
    cached = 0;
  }
  int flags = 0;
  if (truthy(&d->v[K_MLFGAINED])) {
    flags |= 8 | 1;
    if (!truthy(&d->v[K_NOFAIL])) d->v[K_NOFAIL] = d->v[K_MLFGAINED];
  } else if (truthy(&d->v[K_NOFAIL])) flags |= 1;
  if (truthy(&d->v[K_MLFFORGET])) flags |= 2;
  d->v[K_MLFFORGET].set = 0;
  Dict *fail = d;
  int multi = 0;
  if (cached) {
    Dict *c = &cached->d;
    users_add(c, &d->v[K_USER]);
    multi = c->nusers > 1;
    if (truthy(&c->v[K_NOFAIL])) flags |= 4;
    dict_del(c, K_NOFAIL);
    if (truthy(&c->v[K_MLFGAINED])) flags |= 4;
    dict_del(c, K_MLFGAINED);
    if (flags & 8) dict_del(c, K_MLFPENDING);
    for (int j = 0; j < nupd; j++) {
      int k = upd[j];
      if (d->v[k].set) dict_put(c, k, &d->v[k]);
    }
    fail = c;
    if (flags & 2) sess_delete(f, cached, 1);
  } else if (!(flags & 2)) {
    users_add(d, &d->v[K_USER]);
    multi = d->nusers > 1;
    fail = &sess_set(f, &key, h, d, now)->d;
  }
  int pending = truthy(&fail->v[K_MLFPENDING]);
  dict_del(fail, K_MLFPENDING);
  if (pending || multi) {
    dict_del(fail, K_NOFAIL);
    dict_del(fail, K_MLFGAINED);
  }
  return fail;
}

/* parseIPv4 (canonical dotted quads only); -1 when not one */
static int64_t parse_ipv4(const unsigned char *s, int n) {
  int64_t v = 0;
  int octet = 0, digits = 0, dots = 0;
  for (int i = 0; i < n; i++) {
    int c = s[i];
    if (c == 46) {
      if (digits == 0 || dots == 3) return -1;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet == 0) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  if (dots != 3 || digits == 0) return -1;
  return v * 256 + octet;
}

static void put32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }

/* A failure whose id JavaScript works out (conclude's tail): hint, host, fid (-1: none). */
/* A host's key: the filter, then a text record's bytes (hint, lengths, host, <F-ID>). */
static uint32_t host_hash(int fi, const unsigned char *rec, int n) {
  return hash_bytes(rec, n) ^ (uint32_t)(fi * 0x9e3779b1u);
}

static int host_same(Run *r, uint32_t x, int fi, const unsigned char *rec, int n) {
  const unsigned char *k = r->hsbytes + r->hsat[x];
  int kn = (int)((x + 1 < r->hsn ? r->hsat[x + 1] : r->hsblen) - r->hsat[x]) - 1;
  return k[0] == fi && kn == n && memcmp(k + 1, rec, n) == 0;
}

/* The slot of a host: its entry's index + 1 there, or 0 (a free slot, where it goes). */
static uint32_t *host_slot(Run *r, uint32_t h, int fi, const unsigned char *rec, int n) {
  uint32_t mask = r->hscap - 1;
  for (uint32_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t v = r->hslot[i];
    if (v == 0 || (r->hshash[v - 1] == h && host_same(r, v - 1, fi, rec, n))) return &r->hslot[i];
  }
}

/* Bytes of a text record at `t` (see text_record). */
static int record_len(const unsigned char *t) {
  int32_t hl, fl;
  memcpy(&hl, t + 1, 4);
  memcpy(&fl, t + 5, 4);
  return 9 + hl + (fl < 0 ? 0 : fl);
}

/* JavaScript identified text record k: `id` its number, or -1 (not a valid host). */
void run_learn(Run *r, int k, int32_t id) {
  const unsigned char *rec = r->text + r->rtext[k];
  int n = record_len(rec);
  int fi = r->rfilter[k];
  if (r->hscap == 0 || (r->hsn + 1) * 2 > r->hscap) {
    uint32_t cap = r->hscap ? r->hscap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof(uint32_t));
    r->hsval = realloc(r->hsval, cap / 2 * sizeof(int32_t));
    r->hshash = realloc(r->hshash, cap / 2 * sizeof(uint32_t));
    r->hsat = realloc(r->hsat, cap / 2 * sizeof(int64_t));
    for (uint32_t x = 0; x < r->hsn; x++) {
      uint32_t i = r->hshash[x] & (cap - 1);
      while (slot[i]) i = (i + 1) & (cap - 1);
      slot[i] = x + 1;
    }
    free(r->hslot);
    r->hslot = slot;
    r->hscap = cap;
  }
  uint32_t h = host_hash(fi, rec, n);
  uint32_t *s = host_slot(r, h, fi, rec, n);
  if (*s) return; /* met twice before JavaScript saw it */
  if (r->hsblen + 1 + n > r->hsbcap) {
    int64_t cap = r->hsbcap ? r->hsbcap * 2 : 65536;
    while (cap < r->hsblen + 1 + n) cap *= 2;
    r->hsbytes = realloc(r->hsbytes, cap);
    r->hsbcap = cap;
  }
  uint32_t x = r->hsn++;
  r->hsat[x] = r->hsblen;
  r->hsbytes[r->hsblen] = (unsigned char)fi;
  memcpy(r->hsbytes + r->hsblen + 1, rec, n);
  r->hsblen += 1 + n;
  r->hshash[x] = h;
  r->hsval[x] = id;
  *s = x + 1;
}

/*
 * A failure whose host is not a plain IPv4 address: numbered here when JavaScript has already
 * identified that host, else a text record for it to identify (engine.ts, drain).
 */
static void text_record(Run *r, int fi, double time, int hint, const Val *host, const Val *fid) {
  int32_t at = r->tlen;
  if (r->nrec >= r->cap || (int64_t)at + 9 + host->len + (fid ? fid->len : 0) > r->tcap) {
    r->overflow = 1; /* the caller made no room: a bug, reported by engine.ts */
    return;
  }
  unsigned char *t = r->text + at;
  t[0] = (unsigned char)hint;
  put32(t + 1, host->len);
  put32(t + 5, fid ? fid->len : -1);
  memcpy(t + 9, host->p, host->len);
  if (fid) memcpy(t + 9 + host->len, fid->p, fid->len);
  int len = 9 + host->len + (fid ? fid->len : 0);
  if (r->hsn > 0) {
    uint32_t *s = host_slot(r, host_hash(fi, t, len), fi, t, len);
    if (*s) {
      /* as drain does with what JavaScript says of it */
      int32_t id = r->hsval[*s - 1];
      if (id < 0) r->invalid++;
      if (id < 0 || isnan_(time)) return;
      int n = r->nrec++;
      r->rtime[n] = time;
      r->rid[n] = (uint32_t)id;
      r->rfilter[n] = (uint8_t)fi;
      r->rtext[n] = -1;
      r->perf[fi] += 1;
      return;
    }
  }
  r->tlen = at + len;
  int n = r->nrec++;
  r->rtime[n] = time;
  r->rid[n] = 0;
  r->rfilter[n] = (uint8_t)fi;
  r->rtext[n] = at;
  r->tpos[r->ntext++] = n;
}

/* conclude (lean), from the line's dict on: sessions, then the failure's id. */
static void stage2(Run *r, int fi, int i, double time, int owned_line) {
  FState *f = &r->f[fi];
  Spec *s = f->spec;
  Dict *d = &f->scratch;
  Dict *fail = d;
  if (d->v[K_MLFID].set) {
    const int32_t *p = s->prog[i];
    /* the update list is the program's last part (see build in engine.ts) */
    int nupd = p[p[0]];
    fail = merge(f, d, p + p[0] + 1, nupd, isnan_(time) ? r->now : time);
    if (truthy(&fail->v[K_NOFAIL])) return;
  }
  const Val *host;
  int hint;
  if (truthy(&fail->v[K_IP4])) {
    host = &fail->v[K_IP4];
    hint = H_IP4;
  } else if (truthy(&fail->v[K_IP6])) {
    host = &fail->v[K_IP6];
    hint = H_IP6;
  } else if (truthy(&fail->v[K_DNS])) {
    host = &fail->v[K_DNS];
    hint = H_DNS;
  } else if (truthy(&fail->v[K_FID])) {
    host = &fail->v[K_FID];
    hint = H_NONE;
  } else {
    dict_put(fail, K_MLFPENDING, &ONE);
    return;
  }
  if (!owned_line) return;
  const Val *fid = truthy(&fail->v[K_FID]) ? &fail->v[K_FID] : 0;
  if (hint == H_IP4 && host->len <= 253 && (!fid || same(fid, host))) {
    int64_t v4 = parse_ipv4(host->p, host->len);
    if (v4 >= 0) {
      if (isnan_(time)) return;
      if (r->nrec >= r->cap) {
        r->overflow = 1;
        return;
      }
      int n = r->nrec++;
      r->rtime[n] = time;
      r->rid[n] = run_id4(r, (int32_t)v4);
      r->rfilter[n] = (uint8_t)fi;
      r->rtext[n] = -1;
      r->perf[fi] += 1;
      return;
    }
  }
  text_record(r, fi, time, hint, host, fid);
}

/* The line's dict from a failregex's groups and the prefregex's (the lean builder's steps). */
/* groupValue: the first of groups g[0..n) that took part in the match (ov, at base), or unset. */
static void group_value(Val *v, const int32_t *g, int n, const size_t *ov, const unsigned char *base) {
  v->set = 0;
  for (int q = 0; q < n; q++) {
    size_t a = ov[2 * g[q]];
    if (a != UNSET) {
      v->p = base + a;
      v->len = (int32_t)(ov[2 * g[q] + 1] - a);
      v->set = 1;
      return;
    }
  }
}

static void build(Spec *s, Dict *d, int i, const unsigned char *fbase, const size_t *pov,
                  const unsigned char *pbase) {
  const int32_t *p = s->prog[i] + 1;
  int nk = s->nk;
  for (int k = 0; k < nk; k++) d->v[k].set = 0;
  d->nusers = 0;
  size_t *ov = s->fail[i].ov;
  int nown = *p++;
  for (int j = 0; j < nown; j++) {
    int k = *p++;
    int n = *p++;
    group_value(&d->v[k], p, n, ov, fbase);
    p += n;
  }
  int added = 0; /* bit per key: an alt value filled it (the prefregex's value then stays out) */
  int nalt = *p++;
  for (int j = 0; j < nalt; j++) {
    int k = p[0], t = p[1];
    if (truthy(&d->v[k]) && !truthy(&d->v[t])) {
      d->v[t] = d->v[k];
      added |= 1 << t;
    }
    p += 2;
  }
  int npref = *p++;
  for (int j = 0; j < npref; j++) {
    int k = *p++;
    int flag = *p++; /* 1: leave the key alone when an alt value filled it */
    int n = *p++;
    if (!(flag && (added & (1 << k)))) group_value(&d->v[k], p, n, pov, pbase);
    p += n;
  }
}

/* A line's dict made by JavaScript (stage 1 there): lens[k] bytes of `bytes` per key, -1 unset. */
void run_stage2(Run *r, int fi, int i, double time, int owned, int32_t *lens, unsigned char *bytes) {
  FState *f = &r->f[fi];
  Dict *d = &f->scratch;
  int at = 0;
  for (int k = 0; k < f->spec->nk; k++) {
    if (lens[k] < 0) {
      d->v[k].set = 0;
      continue;
    }
    d->v[k].p = bytes + at;
    d->v[k].len = lens[k];
    d->v[k].set = 1;
    at += lens[k];
  }
  d->nusers = 0;
  stage2(r, fi, i, time, owned);
  if (f->dead) {
    sess_free(f, f->dead);
    f->dead = 0;
  }
  put_info(r);
}

/* --------------------------------------------------------------------------------------------
 * Lines */

static const char MONTHS[12][3] = {{'j', 'a', 'n'}, {'f', 'e', 'b'}, {'m', 'a', 'r'}, {'a', 'p', 'r'},
                                   {'m', 'a', 'y'}, {'j', 'u', 'n'}, {'j', 'u', 'l'}, {'a', 'u', 'g'},
                                   {'s', 'e', 'p'}, {'o', 'c', 't'}, {'n', 'o', 'v'}, {'d', 'e', 'c'}};

static int two_digits(const unsigned char *s) {
  int a = s[0] - 48, b = s[1] - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/* syslogFields (dates.ts): "Mmm dd hh:mm:ss" at the start; month, day, h, m, s or 0 */
static int syslog_fields(const unsigned char *s, int len, int *out) {
  if (len < 15) return 0;
  int c0 = s[0] - 65, c1 = s[1] - 97, c2 = s[2] - 97;
  if (c0 < 0 || c0 > 25 || c1 < 0 || c1 > 25 || c2 < 0 || c2 > 25 || s[3] != 32) return 0;
  int month = 0;
  for (int m = 0; m < 12; m++)
    if (MONTHS[m][0] - 97 == c0 && MONTHS[m][1] - 97 == c1 && MONTHS[m][2] - 97 == c2) {
      month = m + 1;
      break;
    }
  if (!month) return 0;
  int d0 = s[4], d1 = s[5] - 48, day;
  if (d1 < 0 || d1 > 9) return 0;
  if (d0 == 49 || d0 == 50) day = (d0 - 48) * 10 + d1;
  else if ((d0 == 48 || d0 == 32) && d1 > 0) day = d1;
  else if (d0 == 51 && d1 <= 1) day = 30 + d1;
  else return 0;
  if (s[6] != 32 || s[9] != 58 || s[12] != 58) return 0;
  int hour = two_digits(s + 7), minute = two_digits(s + 10), second = two_digits(s + 13);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return 0;
  if (len > 15) {
    int n = s[15];
    if (n >= 128 || n == 46 || n == 95 || (n >= 48 && n <= 57) || ((n | 32) >= 97 && (n | 32) <= 122))
      return 0;
    if (n == 32 && len > 16) {
      int y = s[16];
      if (y >= 48 && y <= 57) return 0;
    }
  }
  out[0] = month;
  out[1] = day;
  out[2] = hour;
  out[3] = minute;
  out[4] = second;
  return 1;
}

/* (a byte loop: the literals are short, and most differ early) */
static int starts_with(const unsigned char *p, int n, const unsigned char *lit, int ln) {
  if (n < ln) return 0;
  for (int k = 0; k < ln; k++)
    if (p[k] != lit[k]) return 0;
  return 1;
}

/* PCRE2's \s (no UCP): space, \t \n \v \f \r. */
static int blank(int c) { return c == ' ' || (c >= 9 && c <= 13); }

/*
 * The head of a filter whose prefregex opens with the syslog prefix (spec_fast), read without
 * PCRE2 on the usual shapes of line: " host daemon[pid]: ", or " host " and another daemon's
 * tag (then sshd's "error: "/"fatal: ", "PAM: "), at least one character after. Fills the
 * ovector as PCRE2 does and returns 1, or returns 0 for any other shape (PCRE2 reads it). Why
 * it is PCRE2's match: src/filter/syslog-head.ts.
 */
static int fast_head(const Spec *sp, const unsigned char *p, int n, size_t *ov) {
  int i = 0;
  if (n > 0 && p[0] == '[') return 0; /* "[]" */
  while (i < n && blank(p[i])) i++;
  if (i >= n || p[i] == '<') return 0; /* <facility.level> */
  while (i < n && !blank(p[i])) i++;   /* host */
  if (i >= n) return 0;
  while (i < n && blank(p[i])) i++;
  if (i >= n) return 0;
  int c = p[i];
  if (c == '[' || c == '(' || c == ':' || c == '@' || starts_with(p + i, n - i, (const unsigned char *)"kernel:", 7))
    return 0;
  int k = 0;
  while (k < sp->fn && !starts_with(p + i, n - i, sp->fname[k], sp->flen[k])) k++;
  if (k < sp->fn) {
    /* the daemon, "[pid]:", blanks */
    i += sp->flen[k];
    if (i >= n || p[i] != '[') return 0;
    int d = ++i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    if (i == d || i + 1 >= n || p[i] != ']' || p[i + 1] != ':') return 0;
    i += 2;
    if (i >= n || !blank(p[i])) return 0;
    while (i < n && blank(p[i])) i++;
    if (i >= n || p[i] == '[') return 0; /* [ID n x] */
  } /* else another daemon's line: the prefix ends at its tag */
  int prefix = i;
  if (sp->ftail && (starts_with(p + i, n - i, (const unsigned char *)"error: ", 7) ||
                    starts_with(p + i, n - i, (const unsigned char *)"fatal: ", 7))) {
    i += 7;
    if (starts_with(p + i, n - i, (const unsigned char *)"PAM: ", 5)) i += 5;
  }
  if (i >= n || p[i] == '\n' || p[i] == '\r') return 0; /* (?=[^\n\r]) */
  ov[0] = 0;
  ov[1] = (size_t)i;
  if (sp->fgrouped) {
    ov[2] = 0;
    ov[3] = (size_t)prefix;
  }
  return 1;
}

/*
 * The head of a line as line_filter runs it, for tests: PCRE2's answer, or fast_head's when
 * `fast` and it takes the line (out[3]). out: rc, match end, prefix group end (-1: none).
 */
int head_probe(Spec *sp, const unsigned char *p, int n, int fast, double *out) {
  if (!sp->hashead) return out[0] = -100;
  size_t *ov = sp->head.ov;
  int took = fast && sp->fast && fast_head(sp, p, n, ov);
  int rc = took ? 1 : sp->match(sp->head.code, p, (size_t)n, 0, 0, sp->head.md, 0);
  out[0] = rc;
  out[3] = took;
  out[1] = rc >= 0 ? (double)ov[1] : -1;
  out[2] = rc >= 0 && sp->fgrouped ? (double)ov[3] : -1;
  return rc;
}

/* One filter on one line [s, e): processBytes. 0 done, else ST_DAY or ST_LINE. */
static int line_filter(Run *r, int fi, const unsigned char *s, const unsigned char *e, int owned, int cr) {
  FState *f = &r->f[fi];
  Spec *sp = f->spec;
  int df[5];
  if (!syslog_fields(s, (int)(e - s), df)) return ST_LINE;
  int idx = ((df[0] - 1) * 31 + df[1] - 1) * 24 + df[2];
  int st = sp->dstate[idx];
  if (st == 0) {
    r->info[I_MONTH] = df[0];
    r->info[I_DAY] = df[1];
    return ST_DAY;
  }
  if (st != 1) return ST_LINE;
  double time = sp->base[idx] + df[3] * 60 + df[4];
  f->last_time = time;
  r->dated = 1;
  const unsigned char *off = s + 15;
  const unsigned char *cs = off, *ce = e;
  const size_t *pov = 0;
  if (sp->haspref) {
    int head = sp->hashead && !(cr && memchr(off, '\r', (size_t)(e - off)));
    Rx *px = head ? &sp->head : &sp->pref;
    int rc = head && sp->fast && fast_head(sp, off, (int)(e - off), px->ov)
                 ? 1
                 : sp->match(px->code, off, (size_t)(e - off), 0, 0, px->md, 0);
    if (rc < 0) {
      if (rc != NO_MATCH) return ST_LINE;
      goto done;
    }
    size_t *ov = px->ov;
    pov = ov;
    if (head) cs = off + ov[1];
    else for (int k = 0; k < sp->ncontent; k++) {
      int g = sp->content[k];
      size_t a = ov[2 * g];
      if (a == UNSET) continue;
      size_t b = ov[2 * g + 1];
      if (b > a) {
        cs = off + a;
        ce = off + b;
      }
      break;
    }
  }
  {
    int c0 = cs < ce ? *cs : 128;
    if (c0 > 128) c0 = 128;
    int n = (int)(ce - cs);
    for (int j = sp->cstart[c0]; j < sp->cstart[c0 + 1]; j++) {
      int i = sp->cand[j];
      const unsigned char *lits = sp->lits[i];
      if (lits) {
        int32_t nl, ln;
        memcpy(&nl, lits, 4);
        const unsigned char *q = lits + 4;
        int ok = 0;
        for (int k = 0; k < nl; k++) {
          memcpy(&ln, q, 4);
          if (starts_with(cs, n, q + 4, ln)) {
            ok = 1;
            break;
          }
          q += 4 + ln;
        }
        if (!ok) continue;
      }
      Rx *rx = &sp->fail[i];
      int rc = sp->match(rx->code, cs, (size_t)n, 0, 0, rx->md, 0);
      if (rc == NO_MATCH) continue;
      if (rc < 0) return ST_LINE;
      build(sp, &f->scratch, i, cs, pov, off);
      stage2(r, fi, i, time, owned);
      if (f->dead) {
        sess_free(f, f->dead);
        f->dead = 0;
      }
      break;
    }
  }
done:
  if (owned) {
    if (isnan_(r->first) || time < r->first) r->first = time;
    if (isnan_(r->last) || time > r->last) r->last = time;
  }
  return 0;
}

static void put_info(Run *r) {
  r->info[I_NREC] = r->nrec;
  r->info[I_NTEXT] = r->ntext;
  r->info[I_NNEW] = r->nnew;
  r->info[I_TLEN] = r->tlen;
  r->info[I_LINES] = (double)r->lines;
  r->info[I_BINARY] = (double)r->binary;
  r->info[I_NODATE] = (double)r->nodate;
  r->info[I_FIRST] = r->first;
  r->info[I_LAST] = r->last;
  r->info[I_DATED] = r->dated;
  r->info[I_OVERFLOW] = r->overflow;
  r->info[I_INVALID] = (double)r->invalid;
}

/* Room a record may need: see run_feed. */
int engine_need(int len) { return 9 + 2 * (len > max_owned ? len : max_owned); }

/*
 * The lines of buf[pos, len) (ASCII). `resume`: the first line was started before (counted,
 * `dated` so far), go on at its filter `fi` (a line given back to JavaScript resumes at the
 * next filter). `flags`: what the block holds somewhere (B_NUL, B_CR; a line of a block without
 * them needs no look for them). Returns ST_DONE, or stops before a filter on a line (info:
 * where, and why) with ST_DAY, ST_LINE or ST_FLUSH.
 */
int run_feed(Run *r, unsigned char *buf, int len, int pos, int fi, int owned, int flags, int dated,
             int resume) {
  r->dated = dated;
  while (pos < len) {
    unsigned char *nl = memchr(buf + pos, 10, (size_t)(len - pos));
    int end = nl ? (int)(nl - buf) : len;
    int stop = end;
    if (stop > pos && buf[stop - 1] == 13) stop--;
    if (!resume) {
      if (owned) r->lines++;
      if (stop == pos || ((flags & B_NUL) && memchr(buf + pos, 0, (size_t)(stop - pos)))) {
        if (stop != pos && owned) r->binary++;
        pos = end + 1;
        continue;
      }
      r->dated = 0;
    }
    for (; fi < r->nf; fi++) {
      /* room for a record: host and fid from the line or from a session */
      int need = 9 + 2 * (stop - pos > max_owned ? stop - pos : max_owned);
      if (r->nrec >= r->cap || r->tlen + need > r->tcap) {
        r->info[I_NEED] = need;
        r->info[I_POS] = pos;
        r->info[I_FI] = fi;
        put_info(r);
        return ST_FLUSH;
      }
      int st = line_filter(r, fi, buf + pos, buf + stop, owned, flags & B_CR);
      if (st) {
        r->info[I_POS] = pos;
        r->info[I_FI] = fi;
        r->info[I_START] = pos;
        r->info[I_STOP] = stop;
        put_info(r);
        return st;
      }
    }
    fi = 0;
    resume = 0;
    if (owned && !r->dated) r->nodate++;
    pos = end + 1;
  }
  put_info(r);
  return ST_DONE;
}
