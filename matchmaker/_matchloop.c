/* The default match function's inner loop in C: the walk along a partition's sorted index and the
 * greedy selection of a uniform queue (count teams of one size, no further distance rules, no
 * blocks, no player in two tickets). It is matchmaker.matching's ``_walk`` and ``_select`` (and
 * ``_pack``, ``_fills``) step for step on flat arrays, so a tick proposes exactly what the Python
 * code proposes; tests/unit/test_matchloop.py checks that on random pools. Optional: without a C
 * compiler the package installs without it and matchmaker.matching runs its Python loop.
 *
 * Numbers are doubles: keys and latencies are finite numbers the matcher checked, exact in a double
 * as long as an integer one stays within 2**53 (``Loop`` refuses larger ones, and the tick then
 * runs in Python).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PACK_BUDGET 2000 /* matchmaker.matching.PACK_BUDGET */
#define MAX_REGIONS 62
#define MAX_TEAM_ROLES 10 /* more roles in a team: the selection stays in Python (2**roles subsets) */
#define MAX_OFFER_ROLES 32 /* distinct roles a queue's offers are read as (bits of a uint32_t) */
#define ANY_ROLE UINT32_MAX

typedef struct {
    Py_ssize_t size;   /* positions 0..size+1; 0 and size+1 are sentinels */
    double *keys;      /* by position: -inf, sorted keys, +inf */
    int32_t *members;  /* by position: -1, tickets, -1 */
    int32_t *left;     /* links that skip matched positions (see _find) */
    int32_t *right;
} Index;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;      /* tickets, numbered by age */
    int32_t *sizes;    /* players per ticket */
    double *keys;      /* the index key per ticket (NaN: not eligible) */
    double *strengths; /* the balance attribute's sum per ticket (0 without one) */
    int regions;       /* latency columns; region r is bit 1 << r */
    double *lats;      /* n * regions, NaN where the ticket has no latency to that region */
    int32_t *part;     /* the index of each ticket (-1: in none) */
    int32_t *pos;      /* its position there */
    Py_ssize_t nindexes;
    Index *indexes;
    /* blocks (set_blocks): per ticket, the players (numbered) it must not meet, and its own
     * players among those anyone must not meet; CSR: ticket t's are values[start[t]..start[t+1]) */
    int has_blocks;
    int32_t *avoid_start, *avoid_values, *ids_start, *ids_values;
    PyObject *ids;     /* the tickets' ids (a list), for propose */
    /* set_proposals: for propose */
    PyObject *proposal_lats, *region_names, *team_names, *proposal_type, *quality_type;
    int balance;
    /* the seed loop (configure, next) */
    /* role slots (set_roles): per ticket its players' offered roles as bit masks (CSR; ANY_ROLE for
     * a player who offers none), per team its caps and roles */
    int has_roles, named, max_size, nteams;
    int32_t *offer_start;
    uint32_t *offer_masks;
    int32_t *kinds; /* per ticket: the same number for the same offers (what placed teams swap) */
    int *team_caps;
    struct TeamRoles {
        int nroles;              /* 0: a team without role slots */
        uint32_t bits[MAX_TEAM_ROLES]; /* each role's bit in an offer mask, in declared order */
        int *slots;              /* per subset S of the team's roles (a local mask): their slots */
        int *need;               /* per subset S: the roles in S (each must be played by a smaller team) */
        int counts[MAX_TEAM_ROLES];      /* each role's slots */
        PyObject *names[MAX_TEAM_ROLES]; /* each role's name */
    } *team_roles;
    PyObject *pids; /* per ticket, its players' ids (a tuple): for the roles of placed_teams */
    uint32_t *last_placement; /* the team of each ticket of the last full selection, in order */
    Py_ssize_t nlast;
    int configured;
    double *enqueued;  /* per ticket */
    uint8_t *taken;    /* per ticket: matched, or never eligible */
    double now, wait_for_full;
    int cap, count, smallest, check_latency;
    Py_ssize_t scan;
    struct Window {
        int present;   /* 0: no rule (an infinite window) */
        double base, rate, cap;
        Py_ssize_t nsteps;
        double *after, *value;
    } distance, latency;
} Loop;

/* -- numbers ---------------------------------------------------------------------------------- */

/* ``value`` as a double; 0 with ``*ok`` cleared for anything that is not an int or float, or an int
 * a double cannot hold exactly. */
static double as_double(PyObject *value, int *ok) {
    if (PyFloat_CheckExact(value)) return PyFloat_AS_DOUBLE(value);
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || v > (1LL << 53) || v < -(1LL << 53)) {
            PyErr_Clear();
            *ok = 0;
            return 0.0;
        }
        return (double)v;
    }
    *ok = 0;
    return 0.0;
}

/* -- the index -------------------------------------------------------------------------------- */

/* matching._find: the nearest free position from i in the links' direction (path halving). */
static inline int32_t find(int32_t *links, int32_t i) {
    while (links[i] != i) {
        links[i] = links[links[i]];
        i = links[i];
    }
    return i;
}

typedef struct {
    Index *index;
    double center, low, high, up, down;
    int32_t lo, hi;
    Py_ssize_t left_to_scan;
} Walk;

static void walk_start(Walk *w, Index *index, int32_t position, double low, double high, Py_ssize_t scan) {
    w->index = index;
    w->low = low;
    w->high = high;
    w->center = index->keys[position];
    w->lo = index->left[position - 1] == position - 1 ? position - 1 : find(index->left, position - 1);
    w->hi = index->right[position + 1] == position + 1 ? position + 1 : find(index->right, position + 1);
    w->down = index->keys[w->lo] >= low ? w->center - index->keys[w->lo] : INFINITY;
    w->up = index->keys[w->hi] <= high ? index->keys[w->hi] - w->center : INFINITY;
    w->left_to_scan = scan;
}

/* The next free ticket nearest the center (ties: the older one), or -1. */
static int32_t walk_next(Walk *w) {
    Index *index = w->index;
    int32_t ticket;
    if (w->left_to_scan <= 0) return -1;
    if (w->up < w->down || (w->up == w->down && w->up != INFINITY && index->members[w->hi] < index->members[w->lo])) {
        ticket = index->members[w->hi];
        int32_t next = w->hi + 1;
        w->hi = index->right[next] == next ? next : find(index->right, next);
        w->up = index->keys[w->hi] <= w->high ? index->keys[w->hi] - w->center : INFINITY;
    } else if (w->down != INFINITY) {
        ticket = index->members[w->lo];
        int32_t next = w->lo - 1;
        w->lo = index->left[next] == next ? next : find(index->left, next);
        w->down = index->keys[w->lo] >= w->low ? w->center - index->keys[w->lo] : INFINITY;
    } else {
        return -1;
    }
    w->left_to_scan--;
    return ticket;
}

/* -- packing parties into teams (matching._pack) ---------------------------------------------- */

typedef struct {
    int n, bins, cap, budget;
    const int32_t *sizes;
    int *order, *fills, *placement;
    /* failed (k, sorted fills) states: an open-addressing table of indexes into ``states`` */
    int *states;       /* nstates * (bins + 1) ints: k, then the sorted fills */
    int nstates, maxstates;
    int *table;        /* slots: -1 empty, else a state number */
    int tablesize;
    int *scratch;      /* bins + 1 */
    int oom;
} Pack;

static uint64_t state_hash(const int *state, int len) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < len; i++) {
        h ^= (uint64_t)(uint32_t)state[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The current state (k, sorted fills) in pack->scratch. */
static void pack_state(Pack *p, int k) {
    p->scratch[0] = k;
    memcpy(p->scratch + 1, p->fills, sizeof(int) * p->bins);
    qsort(p->scratch + 1, p->bins, sizeof(int), cmp_int);
}

static int pack_failed(Pack *p) {
    int len = p->bins + 1;
    uint64_t h = state_hash(p->scratch, len);
    for (int slot = (int)(h % (uint64_t)p->tablesize);; slot = (slot + 1) % p->tablesize) {
        int s = p->table[slot];
        if (s < 0) return 0;
        if (memcmp(p->states + (size_t)s * len, p->scratch, sizeof(int) * len) == 0) return 1;
    }
}

static void pack_remember(Pack *p) {
    int len = p->bins + 1;
    if (p->nstates >= p->maxstates) return; /* cannot happen: one state per budget step */
    memcpy(p->states + (size_t)p->nstates * len, p->scratch, sizeof(int) * len);
    uint64_t h = state_hash(p->scratch, len);
    int slot = (int)(h % (uint64_t)p->tablesize);
    while (p->table[slot] >= 0) slot = (slot + 1) % p->tablesize;
    p->table[slot] = p->nstates++;
}

static int pack_place(Pack *p, int k) {
    if (k == p->n) return 1;
    pack_state(p, k);
    if (pack_failed(p) || p->budget <= 0) return 0;
    p->budget--;
    int size = p->sizes[p->order[k]];
    int tried_count = 0;
    int tried[p->bins]; /* the fills tried at this level: bins with the same fill are alike */
    for (int b = 0; b < p->bins; b++) {
        if (p->fills[b] + size > p->cap) continue;
        int seen = 0;
        for (int i = 0; i < tried_count; i++)
            if (tried[i] == p->fills[b]) {
                seen = 1;
                break;
            }
        if (seen) continue;
        tried[tried_count++] = p->fills[b];
        p->fills[b] += size;
        p->placement[p->order[k]] = b;
        if (pack_place(p, k + 1)) return 1;
        p->fills[b] -= size;
    }
    pack_state(p, k); /* the fills are as they were on entry */
    pack_remember(p);
    return 0;
}

/* matching._pack(sizes, bins, cap): the bin of each item into ``placement_out`` (if not NULL) and
 * players per bin into ``fills_out`` (matching._fills); 1 if the sizes pack, 0 if not, -1 out of
 * memory. */
static int pack(const int32_t *sizes, int n, int bins, int cap, int *fills_out, int *placement_out) {
    Pack p;
    long total = 0;
    int largest = 0, result = -1;
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < n; i++) {
        total += sizes[i];
        if (sizes[i] > largest) largest = sizes[i];
    }
    if (total > (long)bins * cap || (n && largest > cap)) return 0;
    p.n = n;
    p.bins = bins;
    p.cap = cap;
    p.budget = PACK_BUDGET;
    p.sizes = sizes;
    p.maxstates = PACK_BUDGET + 1;
    p.tablesize = 2 * p.maxstates + 1;
    p.order = malloc(sizeof(int) * (n ? n : 1));
    p.fills = calloc(bins, sizeof(int));
    p.placement = calloc(n ? n : 1, sizeof(int));
    p.scratch = malloc(sizeof(int) * (bins + 1));
    p.table = malloc(sizeof(int) * p.tablesize);
    p.states = NULL;
    if (!p.order || !p.fills || !p.placement || !p.scratch || !p.table) goto done;
    for (int i = 0; i < p.tablesize; i++) p.table[i] = -1;
    /* largest first, stable (sorted(range(n), key=lambda i: -sizes[i])) */
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && sizes[p.order[j - 1]] < sizes[i]) {
            p.order[j] = p.order[j - 1];
            j--;
        }
        p.order[j] = i;
    }
    p.states = malloc(sizeof(int) * (size_t)p.maxstates * (bins + 1));
    if (!p.states) goto done;
    if (pack_place(&p, 0)) {
        for (int b = 0; b < bins; b++) fills_out[b] = 0;
        for (int i = 0; i < n; i++) fills_out[p.placement[i]] += sizes[i];
        if (placement_out) memcpy(placement_out, p.placement, sizeof(int) * n);
        result = 1;
    } else {
        result = 0;
    }
done:
    free(p.order);
    free(p.fills);
    free(p.placement);
    free(p.scratch);
    free(p.table);
    free(p.states);
    return result;
}

/* -- selection (matching._Tick._select, uniform queues) --------------------------------------- */

typedef struct {
    int32_t *chosen;
    Py_ssize_t nchosen;
    uint64_t mask;
    int full;
    Py_ssize_t misses;
    int32_t *banned;   /* players the chosen tickets must not meet (with blocks) */
    Py_ssize_t nbanned, banned_room;
} Selection;

/* Add ticket's avoided players to the selection's banned ones; -1 out of memory. */
static int ban(Loop *self, Selection *s, int32_t ticket) {
    int32_t from = self->avoid_start[ticket], to = self->avoid_start[ticket + 1];
    if (s->nbanned + (to - from) > s->banned_room) {
        Py_ssize_t room = 2 * (s->nbanned + (to - from)) + 8;
        int32_t *grown = realloc(s->banned, sizeof(int32_t) * room);
        if (!grown) return -1;
        s->banned = grown;
        s->banned_room = room;
    }
    for (int32_t i = from; i < to; i++) s->banned[s->nbanned++] = self->avoid_values[i];
    return 0;
}

/* Whether one of ticket's players is banned by the chosen tickets (or bans one of them). */
static int banned(Loop *self, const Selection *s, int32_t ticket) {
    for (int32_t i = self->ids_start[ticket]; i < self->ids_start[ticket + 1]; i++)
        for (Py_ssize_t j = 0; j < s->nbanned; j++)
            if (s->banned[j] == self->ids_values[i]) return 1;
    return 0;
}

/* The usable regions of ``ticket`` within ``window``. */
static inline uint64_t usable(Loop *self, int32_t ticket, double window) {
    uint64_t shared = 0;
    const double *row = self->lats + (size_t)ticket * self->regions;
    for (int r = 0; r < self->regions; r++)
        if (row[r] <= window) shared |= (uint64_t)1 << r; /* NaN (no latency) is never <= */
    return shared;
}

/* -- role slots (matching._Placer, composition.roles_fit) ------------------------------------- */

/* A team's players can take distinct role slots exactly when, for every subset S of its roles,
 * the players who offer only roles in S are at most S's slots (Hall's condition, over roles: a
 * player is a vertex of degree one in a flow to the roles' capacities). A smaller team must also
 * play every role: for every S, the players who offer a role of S are at least S's roles. Both at
 * once hold exactly when an assignment has both (Mendelsohn-Dulmage), which is what
 * composition.assign_roles finds by augmenting paths. So the selection keeps, per team, the count
 * of players whose offer (read on the team's roles) is a subset of S, for every S: adding a player
 * adds one to each superset of their offer. */

typedef struct {
    int count, cap, smaller;
    int *fills, *players, *offset; /* per team: players, players again (with roles), offset in sub */
    int32_t *sub;                  /* per team, per subset S: its players whose offer is within S */
    int32_t *next;                 /* scratch: a team's sub with a candidate added */
    uint32_t *placement;           /* the team of each placed ticket, in order */
    Py_ssize_t nplaced;
} Placer;

/* A player's offer on a team's roles: bit i for the team's i-th role. */
static inline uint32_t local_offer(const struct TeamRoles *roles, uint32_t offer) {
    if (offer == ANY_ROLE) return ((uint32_t)1 << roles->nroles) - 1;
    uint32_t local = 0;
    for (int i = 0; i < roles->nroles; i++)
        if (offer & roles->bits[i]) local |= (uint32_t)1 << i;
    return local;
}

/* Whether a team's players, with ``room`` more who take any role, fill its slots (every role played
 * if ``every_role``), from ``sub`` (see above) and its ``players``. */
static int roles_hold(const struct TeamRoles *roles, const int32_t *sub, int players, int room, int every_role) {
    uint32_t all = ((uint32_t)1 << roles->nroles) - 1;
    for (uint32_t s = 0; s <= all; s++) {
        int within = sub[s] + (s == all ? room : 0);
        if (within > roles->slots[s]) return 0;
        if (every_role && s && players + room - sub[all ^ s] < roles->need[s]) return 0;
    }
    return 1;
}

/* Placer for a selection of teams of ``cap`` (named teams: their own caps); -1 out of memory. */
static int placer_start(Loop *self, Placer *p, int cap, Py_ssize_t limit) {
    int total = 0;
    memset(p, 0, sizeof(*p));
    p->count = self->nteams;
    p->cap = cap;
    p->smaller = cap < self->max_size;
    p->fills = calloc(p->count, sizeof(int));
    p->players = calloc(p->count, sizeof(int));
    p->offset = calloc(p->count, sizeof(int));
    p->placement = malloc(sizeof(uint32_t) * (limit + 1));
    if (!p->fills || !p->players || !p->offset || !p->placement) return -1;
    int largest = 1;
    for (int team = 0; team < p->count; team++) {
        p->offset[team] = total;
        int subsets = 1 << self->team_roles[team].nroles;
        total += subsets;
        if (subsets > largest) largest = subsets;
    }
    p->sub = calloc(total ? total : 1, sizeof(int32_t));
    p->next = malloc(sizeof(int32_t) * largest);
    return p->sub && p->next ? 0 : -1;
}

static void placer_free(Placer *p) {
    free(p->fills);
    free(p->players);
    free(p->offset);
    free(p->sub);
    free(p->next);
    free(p->placement);
}

static inline int team_cap(Loop *self, const Placer *p, int team) { return self->named ? self->team_caps[team] : p->cap; }

/* _Placer.place: the team ``ticket`` joins (it is placed), or -1 (nothing changed). */
static int placer_place(Loop *self, Placer *p, int32_t ticket) {
    int size = self->sizes[ticket];
    for (int team = 0; team < p->count; team++) {
        int cap = team_cap(self, p, team);
        if (p->fills[team] + size > cap) continue;
        const struct TeamRoles *roles = &self->team_roles[team];
        if (roles->nroles) {
            uint32_t all = ((uint32_t)1 << roles->nroles) - 1;
            int32_t *sub = p->sub + p->offset[team];
            memcpy(p->next, sub, sizeof(int32_t) * (all + 1));
            for (int32_t i = self->offer_start[ticket]; i < self->offer_start[ticket + 1]; i++) {
                uint32_t offer = local_offer(roles, self->offer_masks[i]);
                for (uint32_t s = offer; s <= all; s = (s + 1) | offer) p->next[s]++;
            }
            /* a smaller team must still play every role: the room left counts as players who take
             * any role, so a team is never filled past the point of no healer */
            int room = p->smaller ? p->cap - p->fills[team] - size : 0;
            if (!roles_hold(roles, p->next, p->players[team] + size, room, p->smaller)) continue;
            memcpy(sub, p->next, sizeof(int32_t) * (all + 1));
            p->players[team] += size;
        }
        p->fills[team] += size;
        p->placement[p->nplaced++] = (uint32_t)team;
        return team;
    }
    return -1;
}

/* _Placer.complete: teams smaller than their slots play every role. */
static int placer_complete(Loop *self, const Placer *p) {
    if (!p->smaller) return 1;
    for (int team = 0; team < p->count; team++) {
        const struct TeamRoles *roles = &self->team_roles[team];
        if (roles->nroles && !roles_hold(roles, p->sub + p->offset[team], p->players[team], 0, 1)) return 0;
    }
    return 1;
}

/* One candidate offered to the selection: 1 when the match is full (stop), 0 to go on, -1 on error. */
static int offer(Loop *self, Selection *s, Placer *placer, int32_t ticket, int *fills, int count, int cap, int target,
                 int *players, double *low, double *high, double spread, int check_latency, double window) {
    int size = self->sizes[ticket];
    if (*players + size > target) return 0;
    double key = self->keys[ticket];
    double new_low = key < *low ? key : *low;
    double new_high = key > *high ? key : *high;
    if (new_high - new_low > spread) return 0;
    if (self->has_blocks && banned(self, s, ticket)) return 0;
    uint64_t shared = 0;
    if (check_latency) {
        shared = usable(self, ticket, window) & s->mask;
        if (!shared) {
            s->misses++;
            return 0;
        }
    }
    int team = 0;
    if (placer) {
        if (placer_place(self, placer, ticket) < 0) return 0;
    } else {
        for (team = 0; team < count; team++)
            if (fills[team] + size <= cap) {
                fills[team] += size;
                break;
            }
    }
    if (!placer && team == count) {
        int32_t *together = malloc(sizeof(int32_t) * (s->nchosen + 1));
        int *repacked = malloc(sizeof(int) * count);
        if (!together || !repacked) {
            free(together);
            free(repacked);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < s->nchosen; i++) together[i] = self->sizes[s->chosen[i]];
        together[s->nchosen] = size;
        int packed = pack(together, (int)s->nchosen + 1, count, cap, repacked, NULL);
        if (packed > 0) memcpy(fills, repacked, sizeof(int) * count);
        free(together);
        free(repacked);
        if (packed < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (!packed) return 0;
    }
    if (self->has_blocks && ban(self, s, ticket) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (check_latency) s->mask = shared;
    *low = new_low;
    *high = new_high;
    s->chosen[s->nchosen++] = ticket;
    *players += size;
    return *players == target;
}

static PyObject *int_list(const int32_t *values, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static int check_ticket(Loop *self, long ticket) {
    if (ticket < 0 || ticket >= self->n) {
        PyErr_SetString(PyExc_IndexError, "ticket out of range");
        return 0;
    }
    return 1;
}

/* -- the type --------------------------------------------------------------------------------- */

static void Loop_dealloc(Loop *self) {
    for (Py_ssize_t i = 0; i < self->nindexes; i++) {
        free(self->indexes[i].keys);
        free(self->indexes[i].members);
        free(self->indexes[i].left);
        free(self->indexes[i].right);
    }
    free(self->indexes);
    free(self->sizes);
    free(self->keys);
    free(self->strengths);
    free(self->lats);
    free(self->part);
    free(self->pos);
    Py_XDECREF(self->ids);
    Py_XDECREF(self->proposal_lats);
    Py_XDECREF(self->region_names);
    Py_XDECREF(self->team_names);
    Py_XDECREF(self->proposal_type);
    Py_XDECREF(self->quality_type);
    free(self->enqueued);
    free(self->taken);
    free(self->avoid_start);
    free(self->avoid_values);
    free(self->ids_start);
    free(self->ids_values);
    free(self->distance.after);
    free(self->distance.value);
    free(self->latency.after);
    free(self->latency.value);
    if (self->team_roles)
        for (int team = 0; team < self->nteams; team++) {
            free(self->team_roles[team].slots);
            free(self->team_roles[team].need);
            for (int i = 0; i < self->team_roles[team].nroles; i++) Py_XDECREF(self->team_roles[team].names[i]);
        }
    free(self->team_roles);
    free(self->team_caps);
    Py_XDECREF(self->pids);
    free(self->offer_start);
    free(self->offer_masks);
    free(self->kinds);
    free(self->last_placement);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Loop(sizes, keys, strengths, ok, latencies, regions): per ticket its size, its index key, its
 * strength (the balance attribute's sum), whether it is eligible (the others' values are never
 * read), its latencies (a dict of region -> ms; ``latencies`` is None in a queue without a latency
 * rule), and the regions, in bit order. ValueError for an eligible ticket's value it cannot hold
 * exactly (a strength must be a float or an integer within 2**40, so that sums stay exact). */
static int Loop_init(Loop *self, PyObject *args, PyObject *kwargs) {
    PyObject *sizes, *keys, *strengths, *ok_list, *lats, *regions;
    static char *names[] = {"sizes", "keys", "strengths", "ok", "latencies", "regions", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OO!", names, &PyList_Type, &sizes, &PyList_Type, &keys,
                                     &PyList_Type, &strengths, &PyList_Type, &ok_list, &lats, &PyList_Type, &regions))
        return -1;
    Py_ssize_t n = PyList_GET_SIZE(sizes);
    if (PyList_GET_SIZE(keys) != n || PyList_GET_SIZE(strengths) != n || PyList_GET_SIZE(ok_list) != n ||
        (lats != Py_None && (!PyList_Check(lats) || PyList_GET_SIZE(lats) != n))) {
        PyErr_SetString(PyExc_ValueError, "sizes, keys and latencies differ in length");
        return -1;
    }
    Py_ssize_t nregions = PyList_GET_SIZE(regions);
    if (nregions > MAX_REGIONS) {
        PyErr_SetString(PyExc_ValueError, "too many regions");
        return -1;
    }
    if (self->sizes) { /* __init__ called twice */
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    self->n = n;
    self->regions = lats == Py_None ? 0 : (int)nregions;
    self->sizes = malloc(sizeof(int32_t) * (n ? n : 1));
    self->keys = malloc(sizeof(double) * (n ? n : 1));
    self->strengths = malloc(sizeof(double) * (n ? n : 1));
    self->part = malloc(sizeof(int32_t) * (n ? n : 1));
    self->pos = malloc(sizeof(int32_t) * (n ? n : 1));
    self->lats = malloc(sizeof(double) * (size_t)(n ? n : 1) * (self->regions ? self->regions : 1));
    if (!self->sizes || !self->keys || !self->strengths || !self->part || !self->pos || !self->lats) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < n; t++) {
        PyObject *size = PyList_GET_ITEM(sizes, t), *key = PyList_GET_ITEM(keys, t);
        self->part[t] = -1;
        self->pos[t] = 0;
        int eligible = PyObject_IsTrue(PyList_GET_ITEM(ok_list, t));
        if (eligible < 0) return -1;
        if (!eligible) { /* never in an index, never read */
            self->sizes[t] = 0;
            self->keys[t] = NAN;
            self->strengths[t] = 0.0;
            for (int r = 0; r < self->regions; r++) self->lats[(size_t)t * self->regions + r] = NAN;
            continue;
        } else {
            long v = PyLong_AsLong(size);
            if (v == -1 && PyErr_Occurred()) return -1;
            if (v < 0 || v > INT32_MAX) {
                PyErr_SetString(PyExc_ValueError, "a size out of range");
                return -1;
            }
            self->sizes[t] = (int32_t)v;
            int ok = 1;
            self->keys[t] = as_double(key, &ok);
            if (!ok) {
                PyErr_SetString(PyExc_ValueError, "a key that is not exactly a double");
                return -1;
            }
            PyObject *strength = PyList_GET_ITEM(strengths, t);
            self->strengths[t] = as_double(strength, &ok);
            if (!ok || (PyLong_CheckExact(strength) && fabs(self->strengths[t]) > (double)(1LL << 40))) {
                PyErr_SetString(PyExc_ValueError, "a strength whose sums would not be exact in a double");
                return -1;
            }
        }
        for (int r = 0; r < self->regions; r++) {
            PyObject *row = PyList_GET_ITEM(lats, t);
            double ms = NAN;
            if (PyDict_Check(row)) {
                PyObject *value = PyDict_GetItemWithError(row, PyList_GET_ITEM(regions, r));
                if (value) {
                    int ok = 1;
                    ms = as_double(value, &ok);
                    if (!ok) {
                        PyErr_SetString(PyExc_ValueError, "a latency that is not exactly a double");
                        return -1;
                    }
                } else if (PyErr_Occurred()) {
                    return -1;
                }
            }
            self->lats[(size_t)t * self->regions + r] = ms;
        }
    }
    return 0;
}

/* Sort order of an index: by key, equal keys by ticket number (age), which is what Python's stable
 * sort by key does to members given in age order. */
static const double *sort_keys;
static int by_key(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    double kx = sort_keys[x], ky = sort_keys[y];
    if (kx < ky) return -1;
    if (kx > ky) return 1;
    return (x > y) - (x < y);
}

/* add_index(members): a partition's tickets (eligible ones), sorted here by key (ties: the older);
 * its number. */
static PyObject *Loop_add_index(Loop *self, PyObject *arg) {
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "members must be a list");
        return NULL;
    }
    Py_ssize_t m = PyList_GET_SIZE(arg);
    Index *grown = realloc(self->indexes, sizeof(Index) * (self->nindexes + 1));
    if (!grown) return PyErr_NoMemory();
    self->indexes = grown;
    Index *index = &self->indexes[self->nindexes];
    memset(index, 0, sizeof(Index));
    index->size = m;
    index->keys = malloc(sizeof(double) * (m + 2));
    index->members = malloc(sizeof(int32_t) * (m + 2));
    index->left = malloc(sizeof(int32_t) * (m + 2));
    index->right = malloc(sizeof(int32_t) * (m + 2));
    if (!index->keys || !index->members || !index->left || !index->right) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        long t = PyLong_AsLong(PyList_GET_ITEM(arg, i));
        if (t == -1 && PyErr_Occurred()) goto fail;
        if (!check_ticket(self, t)) goto fail;
        if (isnan(self->keys[t])) {
            PyErr_SetString(PyExc_ValueError, "a ticket that is not eligible");
            goto fail;
        }
        index->members[i + 1] = (int32_t)t;
    }
    sort_keys = self->keys; /* the GIL is held: no other sort runs meanwhile */
    qsort(index->members + 1, m, sizeof(int32_t), by_key);
    index->keys[0] = -INFINITY;
    index->keys[m + 1] = INFINITY;
    index->members[0] = index->members[m + 1] = -1;
    for (Py_ssize_t i = 0; i < m + 2; i++) index->left[i] = index->right[i] = (int32_t)i;
    for (Py_ssize_t i = 1; i <= m; i++) {
        int32_t t = index->members[i];
        index->keys[i] = self->keys[t];
        self->part[t] = (int32_t)self->nindexes;
        self->pos[t] = (int32_t)i;
    }
    return PyLong_FromSsize_t(self->nindexes++);
fail:
    free(index->keys);
    free(index->members);
    free(index->left);
    free(index->right);
    return NULL;
}

static Index *index_of(Loop *self, long ticket) {
    if (!check_ticket(self, ticket)) return NULL;
    if (self->part[ticket] < 0) {
        PyErr_SetString(PyExc_ValueError, "the ticket is in no index");
        return NULL;
    }
    return &self->indexes[self->part[ticket]];
}

static void take(Loop *self, int32_t ticket) {
    Index *index = &self->indexes[self->part[ticket]];
    int32_t p = self->pos[ticket];
    index->right[p] = p + 1;
    index->left[p] = p - 1;
    if (self->taken) self->taken[ticket] = 1;
}

/* take(ticket): the ticket is matched; walks skip it from now on. */
static PyObject *Loop_take(Loop *self, PyObject *arg) {
    long ticket = PyLong_AsLong(arg);
    if (ticket == -1 && PyErr_Occurred()) return NULL;
    if (!index_of(self, ticket)) return NULL;
    take(self, (int32_t)ticket);
    Py_RETURN_NONE;
}

/* walk(seed, low, high, scan): the free tickets of the seed's index within [low, high], nearest the
 * seed's key first, at most ``scan`` (matching._Tick._walk, all at once). */
static PyObject *Loop_walk(Loop *self, PyObject *args) {
    long seed;
    double low, high;
    Py_ssize_t scan;
    if (!PyArg_ParseTuple(args, "lddn", &seed, &low, &high, &scan)) return NULL;
    Index *index = index_of(self, seed);
    if (!index) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Walk w;
    walk_start(&w, index, self->pos[seed], low, high, scan);
    for (int32_t t; (t = walk_next(&w)) >= 0;) {
        PyObject *v = PyLong_FromLong(t);
        if (!v || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
    }
    return out;
}

/* The common part of select and select_from: candidates from the walk (``walk``) or from ``list``. */
static PyObject *run_select(Loop *self, long seed, Walk *walk, PyObject *list, int cap, int count, unsigned long long mask,
                            double spread, int check_latency, double window) {
    if (cap < 0 || count <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad team size or count");
        return NULL;
    }
    Selection s;
    Placer placer, *placing = self->has_roles ? &placer : NULL;
    Py_ssize_t limit = walk ? walk->left_to_scan : PyList_GET_SIZE(list);
    int target = count * cap, players = self->sizes[seed];
    if (placing) {
        if (placer_start(self, &placer, cap, limit) < 0) {
            placer_free(&placer);
            return PyErr_NoMemory();
        }
        if (self->named)
            for (int team = target = 0; team < self->nteams; team++) target += self->team_caps[team];
    }
    int *fills = calloc(count, sizeof(int));
    int32_t *gathered = walk ? malloc(sizeof(int32_t) * (limit ? limit : 1)) : NULL;
    Py_ssize_t ngathered = 0;
    PyObject *result = NULL;
    s.chosen = malloc(sizeof(int32_t) * (limit + 1));
    s.nchosen = 0;
    s.mask = mask;
    s.full = 0;
    s.misses = 0;
    s.banned = NULL;
    s.nbanned = s.banned_room = 0;
    if (!fills || !s.chosen || (walk && !gathered) || (self->has_blocks && ban(self, &s, (int32_t)seed) < 0)) {
        PyErr_NoMemory();
        goto done;
    }
    s.chosen[s.nchosen++] = (int32_t)seed;
    if (placing ? placer_place(self, &placer, (int32_t)seed) >= 0 : players <= cap) {
        double low = self->keys[seed], high = self->keys[seed];
        fills[0] = players;
        for (Py_ssize_t i = 0;; i++) {
            int32_t ticket;
            if (walk) {
                ticket = walk_next(walk);
                if (ticket < 0) break;
                gathered[ngathered++] = ticket;
            } else {
                if (i >= limit) break;
                long t = PyLong_AsLong(PyList_GET_ITEM(list, i));
                if (t == -1 && PyErr_Occurred()) goto done;
                if (!check_ticket(self, t)) goto done;
                ticket = (int32_t)t;
            }
            int got = offer(self, &s, placing, ticket, fills, count, cap, target, &players, &low, &high, spread,
                            check_latency, window);
            if (got < 0) goto done;
            if (got) {
                s.full = !placing || placer_complete(self, placing);
                if (s.full && placing) { /* the teams of this match, for matching._Tick._placed_teams */
                    uint32_t *kept = realloc(self->last_placement, sizeof(uint32_t) * placer.nplaced);
                    if (!kept) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    memcpy(kept, placer.placement, sizeof(uint32_t) * placer.nplaced);
                    self->last_placement = kept;
                    self->nlast = placer.nplaced;
                }
                break;
            }
        }
    }
    {
        PyObject *chosen = int_list(s.chosen, s.nchosen);
        /* the walk's tickets matter only to go on after a first pass that is not full */
        PyObject *gathered_list = walk ? int_list(gathered, s.full ? 0 : ngathered) : NULL;
        if (!chosen || (walk && !gathered_list)) {
            Py_XDECREF(chosen);
            Py_XDECREF(gathered_list);
            goto done;
        }
        if (walk)
            result = Py_BuildValue("(NKNNn)", chosen, (unsigned long long)s.mask, PyBool_FromLong(s.full), gathered_list,
                                   s.misses);
        else
            result = Py_BuildValue("(NKNn)", chosen, (unsigned long long)s.mask, PyBool_FromLong(s.full), s.misses);
    }
done:
    free(fills);
    free(gathered);
    free(s.chosen);
    free(s.banned);
    if (placing) placer_free(placing);
    return result;
}

/* select_from(seed, candidates, cap, count, mask, spread, check_latency, window):
 * (chosen, mask, full, latency misses) over a list of candidates. */
static PyObject *Loop_select_from(Loop *self, PyObject *args) {
    long seed;
    PyObject *candidates;
    double spread, window;
    int cap, count, check_latency;
    unsigned long long mask;
    if (!PyArg_ParseTuple(args, "lO!iiKdpd", &seed, &PyList_Type, &candidates, &cap, &count, &mask, &spread,
                          &check_latency, &window))
        return NULL;
    if (!check_ticket(self, seed)) return NULL;
    return run_select(self, seed, NULL, candidates, cap, count, mask, spread, check_latency, window);
}

/* -- teams (matching._Tick._teams, matching._swap_to_balance) --------------------------------- */

/* Swap tickets of the same kind (``kinds``: their sizes, or in a queue with role slots their offers)
 * between the strongest and the weakest team while the gap narrows.
 * ``teams``: count rows of ``stride`` tickets, ``lengths`` per row. */
static void swap_to_balance(Loop *self, int32_t *teams, const int *lengths, int count, int stride, const int32_t *kinds) {
    double *sums = malloc(sizeof(double) * count);
    if (!sums) return; /* cannot happen in practice; the teams stay as placed, still valid */
    for (int c = 0; c < count; c++) {
        double total = 0.0;
        for (int i = 0; i < lengths[c]; i++) total += self->strengths[teams[c * stride + i]];
        sums[c] = total;
    }
    for (int round = 0; round < 4 * count; round++) {
        int strong = 0, weak = 0;
        for (int c = 1; c < count; c++) {
            if (sums[c] > sums[strong]) strong = c;
            if (sums[c] < sums[weak]) weak = c;
        }
        double gap = sums[strong] - sums[weak], best = gap;
        int pick_i = 0, pick_j = 0;
        for (int i = 0; i < lengths[strong]; i++) {
            int32_t a = teams[strong * stride + i];
            int32_t kind = kinds[a];
            double value = self->strengths[a];
            for (int j = 0; j < lengths[weak]; j++) {
                int32_t b = teams[weak * stride + j];
                if (kinds[b] == kind) {
                    double after = fabs(gap - 2 * (value - self->strengths[b]));
                    if (after < best) {
                        best = after;
                        pick_i = i;
                        pick_j = j;
                    }
                }
            }
        }
        if (best >= gap) break;
        int32_t a = teams[strong * stride + pick_i], b = teams[weak * stride + pick_j];
        teams[strong * stride + pick_i] = b;
        teams[weak * stride + pick_j] = a;
        sums[strong] -= self->strengths[a] - self->strengths[b];
        sums[weak] += self->strengths[a] - self->strengths[b];
    }
    free(sums);
}

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The teams of the tickets in ``order`` (``n``, reordered here): ``count`` teams of exactly ``size``
 * players, parties largest first into the weakest team with room (an exact packing if that cannot
 * place them), then swaps while the gap narrows; each team in age order, in ``teams`` (rows of
 * ``n``) and ``lengths``. 0, or -1 with an exception set. */
static int build_teams(Loop *self, int32_t *order, Py_ssize_t n, int size, int count, int balance, int32_t *teams,
                       int *lengths) {
    int stride = (int)n, result = -1;
    int *fills = calloc(count, sizeof(int)), *placement = malloc(sizeof(int) * n), *bins = malloc(sizeof(int) * count);
    int32_t *order_sizes = malloc(sizeof(int32_t) * n);
    double *sums = calloc(count, sizeof(double));
    if (!fills || !placement || !bins || !order_sizes || !sums) {
        PyErr_NoMemory();
        goto done;
    }
    for (int c = 0; c < count; c++) lengths[c] = 0;
    if (n == count) { /* one ticket per team */
        qsort(order, n, sizeof(int32_t), cmp_int32);
        for (int c = 0; c < count; c++) {
            teams[c * stride] = order[c];
            lengths[c] = 1;
        }
        result = 0;
        goto done;
    }
    /* largest parties first, then the strongest, then as chosen (two stable sorts in Python) */
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t t = order[i];
        Py_ssize_t j = i;
        while (j > 0) {
            int32_t u = order[j - 1];
            int before = self->sizes[t] > self->sizes[u] ||
                         (self->sizes[t] == self->sizes[u] && self->strengths[t] > self->strengths[u]);
            if (!before) break;
            order[j] = u;
            j--;
        }
        order[j] = t;
    }
    int greedy = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t t = order[i];
        int best = -1;
        for (int c = 0; c < count; c++)
            if (fills[c] + self->sizes[t] <= size && (best < 0 || sums[c] < sums[best])) best = c;
        if (best < 0) {
            greedy = 0;
            break;
        }
        teams[best * stride + lengths[best]++] = t;
        fills[best] += self->sizes[t];
        sums[best] += self->strengths[t];
    }
    if (!greedy) {
        for (Py_ssize_t i = 0; i < n; i++) order_sizes[i] = self->sizes[order[i]];
        int packed = pack(order_sizes, (int)n, count, size, bins, placement);
        if (packed < 0) {
            PyErr_NoMemory();
            goto done;
        }
        if (!packed) {
            PyErr_SetString(PyExc_AssertionError, "selection only keeps tickets that pack");
            goto done;
        }
        for (int c = 0; c < count; c++) lengths[c] = 0;
        for (Py_ssize_t i = 0; i < n; i++) teams[placement[i] * stride + lengths[placement[i]]++] = order[i];
    }
    if (balance && count > 1) swap_to_balance(self, teams, lengths, count, stride, self->sizes);
    result = 0;
done:
    if (result == 0)
        for (int c = 0; c < count; c++) qsort(teams + (size_t)c * stride, lengths[c], sizeof(int32_t), cmp_int32);
    free(fills);
    free(placement);
    free(bins);
    free(order_sizes);
    free(sums);
    return result;
}

/* The tickets of a list, checked, into a new array ``*out`` (the caller frees it, also on error);
 * -1 with an exception set. */
static int read_tickets(Loop *self, PyObject *list, int32_t **out) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    *out = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long t = PyLong_AsLong(PyList_GET_ITEM(list, i));
        if (t == -1 && PyErr_Occurred()) return -1;
        if (!check_ticket(self, t)) return -1;
        (*out)[i] = (int32_t)t;
    }
    return 0;
}

/* The chosen tickets of a list in ``order``, and room for ``count`` teams of them; -1 with an
 * exception set (the caller frees the arrays either way). */
static int read_chosen(Loop *self, PyObject *list, int count, int32_t **order, int32_t **teams, int **lengths) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (count <= 0 || n <= 0 || n > INT32_MAX / (count + 1)) {
        PyErr_SetString(PyExc_ValueError, "bad team count or tickets");
        return -1;
    }
    *teams = malloc(sizeof(int32_t) * (size_t)count * n);
    *lengths = calloc(count, sizeof(int));
    if (!*teams || !*lengths) {
        PyErr_NoMemory();
        return -1;
    }
    return read_tickets(self, list, order);
}

static double team_sum(Loop *self, const int32_t *members, int length) {
    double total = 0.0;
    for (int i = 0; i < length; i++) total += self->strengths[members[i]];
    return total;
}

/* -- role per player (composition.assign_roles, step for step) --------------------------------- */

/* Players -> slots of one team, grown by augmenting paths (composition._Matching). A team's slots
 * are its roles' in declared order, ``count`` of each; a player fits a slot whose role they offer. */
typedef struct {
    int nplayers, nslots;
    const uint32_t *offers; /* per player, local (bit i: the team's i-th role) */
    const int *role_of;     /* per slot */
    int *holder, *taken;    /* slot -> player, player -> slot (-1: none) */
    uint8_t *seen;
} Matching;

static inline int fits(const Matching *m, int player, int slot) {
    return (m->offers[player] >> m->role_of[slot]) & 1;
}

static int from_player(Matching *m, int player) {
    for (int slot = 0; slot < m->nslots; slot++) {
        if (!fits(m, player, slot) || m->seen[slot]) continue;
        m->seen[slot] = 1;
        if (m->holder[slot] < 0 || from_player(m, m->holder[slot])) {
            m->holder[slot] = player;
            m->taken[player] = slot;
            return 1;
        }
    }
    return 0;
}

/* Used while only required slots are matched: a player holding one frees it only if that slot
 * finds another player. */
static int from_slot(Matching *m, int slot) {
    for (int player = 0; player < m->nplayers; player++) {
        if (!fits(m, player, slot) || m->seen[player]) continue;
        m->seen[player] = 1;
        if (m->taken[player] < 0 || from_slot(m, m->taken[player])) {
            m->holder[slot] = player;
            m->taken[player] = slot;
            return 1;
        }
    }
    return 0;
}

/* assign_roles: the slot of each player into ``m->taken``; 1, or 0 if there is no assignment. */
static int assign(Matching *m, const struct TeamRoles *roles, int every_role) {
    int seen_room = m->nplayers > m->nslots ? m->nplayers : m->nslots;
    if (m->nplayers > m->nslots) return 0;
    for (int i = 0; i < m->nslots; i++) m->holder[i] = -1;
    for (int i = 0; i < m->nplayers; i++) m->taken[i] = -1;
    if (every_role)
        for (int role = 0, first = 0; role < roles->nroles; first += roles->counts[role++]) {
            if (!roles->counts[role]) continue;
            memset(m->seen, 0, seen_room);
            if (!from_slot(m, first)) return 0;
        }
    for (int player = 0; player < m->nplayers; player++) {
        if (m->taken[player] >= 0) continue;
        memset(m->seen, 0, seen_room);
        if (!from_player(m, player)) return 0;
    }
    return 1;
}

/* Each player of a placed team -> their role slot's name, into ``out`` (matching._Tick._roles). */
static int team_roles_into(Loop *self, const struct TeamRoles *roles, const int32_t *members, int length,
                           int every_role, PyObject *out) {
    int nplayers = 0, nslots = 0, ok = -1;
    for (int i = 0; i < length; i++) nplayers += self->offer_start[members[i] + 1] - self->offer_start[members[i]];
    for (int role = 0; role < roles->nroles; role++) nslots += roles->counts[role];
    Matching m = {.nplayers = nplayers, .nslots = nslots};
    uint32_t *offers = malloc(sizeof(uint32_t) * (nplayers ? nplayers : 1));
    int *role_of = malloc(sizeof(int) * (nslots ? nslots : 1));
    m.holder = malloc(sizeof(int) * (nslots ? nslots : 1));
    m.taken = malloc(sizeof(int) * (nplayers ? nplayers : 1));
    m.seen = malloc((nplayers > nslots ? nplayers : nslots) + 1);
    if (!offers || !role_of || !m.holder || !m.taken || !m.seen) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0, p = 0; i < length; i++)
        for (int32_t j = self->offer_start[members[i]]; j < self->offer_start[members[i] + 1]; j++)
            offers[p++] = local_offer(roles, self->offer_masks[j]);
    for (int role = 0, s = 0; role < roles->nroles; role++)
        for (int c = 0; c < roles->counts[role]; c++) role_of[s++] = role;
    m.offers = offers;
    m.role_of = role_of;
    if (!assign(&m, roles, every_role)) {
        PyErr_SetString(PyExc_RuntimeError, "selection only keeps teams whose players fill their slots");
        goto done;
    }
    for (int i = 0, p = 0; i < length; i++) {
        PyObject *ids = PyList_GET_ITEM(self->pids, members[i]);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(ids); j++, p++)
            if (PyDict_SetItem(out, PyTuple_GET_ITEM(ids, j), roles->names[role_of[m.taken[p]]]) < 0) goto done;
    }
    ok = 0;
done:
    free(offers);
    free(role_of);
    free(m.holder);
    free(m.taken);
    free(m.seen);
    return ok;
}

/* (teams, their strength sums) as Python lists, from ``count`` rows of ``stride`` tickets. */
static PyObject *teams_and_sums(Loop *self, const int32_t *teams, const int *lengths, int count, Py_ssize_t stride) {
    PyObject *result = NULL, *out_teams = PyList_New(count), *out_sums = PyList_New(count);
    if (!out_teams || !out_sums) goto done;
    for (int c = 0; c < count; c++) {
        PyObject *members = int_list(teams + (size_t)c * stride, lengths[c]);
        PyObject *value = members ? PyFloat_FromDouble(team_sum(self, teams + (size_t)c * stride, lengths[c])) : NULL;
        if (!members || !value) {
            Py_XDECREF(members);
            goto done;
        }
        PyList_SET_ITEM(out_teams, c, members);
        PyList_SET_ITEM(out_sums, c, value);
    }
    result = PyTuple_Pack(2, out_teams, out_sums);
done:
    Py_XDECREF(out_teams);
    Py_XDECREF(out_sums);
    return result;
}

/* teams(chosen, size, count, balance): (teams, their strength sums); see build_teams. */
static PyObject *Loop_teams(Loop *self, PyObject *args) {
    PyObject *chosen_list, *result = NULL;
    int size, count, balance;
    int32_t *order = NULL, *teams = NULL;
    int *lengths = NULL;
    if (!PyArg_ParseTuple(args, "O!iip", &PyList_Type, &chosen_list, &size, &count, &balance)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(chosen_list);
    if (read_chosen(self, chosen_list, count, &order, &teams, &lengths) < 0) goto done;
    if (build_teams(self, order, n, size, count, balance, teams, lengths) < 0) goto done;
    result = teams_and_sums(self, teams, lengths, count, n);
done:
    free(order);
    free(teams);
    free(lengths);
    return result;
}

/* placed_teams(chosen, balance, size): (teams, their strength sums, player id -> role) as the last
 * full selection with role slots placed ``chosen``; teams alike are balanced by swapping tickets of
 * equal offers (matching._Tick._placed_teams and _roles; teams of ``size``: smaller ones play every
 * role). */
static PyObject *Loop_placed_teams(Loop *self, PyObject *args) {
    PyObject *chosen_list, *result = NULL, *roles = NULL;
    int balance, size;
    int32_t *order = NULL, *teams = NULL;
    int *lengths = NULL;
    if (!PyArg_ParseTuple(args, "O!pi", &PyList_Type, &chosen_list, &balance, &size)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(chosen_list);
    if (!self->has_roles || n != self->nlast) {
        PyErr_SetString(PyExc_ValueError, "not the last full selection with role slots");
        return NULL;
    }
    int count = self->nteams;
    if (read_chosen(self, chosen_list, count, &order, &teams, &lengths) < 0) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t team = self->last_placement[i];
        teams[(size_t)team * n + lengths[team]++] = order[i];
    }
    if (balance && !self->named && count > 1) swap_to_balance(self, teams, lengths, count, (int)n, self->kinds);
    for (int c = 0; c < count; c++) qsort(teams + (size_t)c * n, lengths[c], sizeof(int32_t), cmp_int32);
    roles = PyDict_New();
    if (!roles) goto done;
    for (int c = 0; c < count; c++)
        if (self->team_roles[c].nroles &&
            team_roles_into(self, &self->team_roles[c], teams + (size_t)c * n, lengths[c], size < self->max_size,
                            roles) < 0)
            goto done;
    result = teams_and_sums(self, teams, lengths, count, n);
    if (result) {
        PyObject *with_roles = Py_BuildValue("(OOO)", PyTuple_GET_ITEM(result, 0), PyTuple_GET_ITEM(result, 1), roles);
        Py_SETREF(result, with_roles);
    }
done:
    Py_XDECREF(roles);
    free(order);
    free(teams);
    free(lengths);
    return result;
}

/* The region of ``mask`` whose worst latency over the chosen tickets is lowest (ties: the lowest
 * column) into ``column``, and the first ticket with that worst into ``ticket``; -1, -1 if none. */
static void lowest_worst(Loop *self, const int32_t *chosen, Py_ssize_t n, uint64_t mask, int *column, int32_t *ticket) {
    double best = 0.0;
    *column = -1;
    *ticket = -1;
    for (int r = 0; r < self->regions; r++) {
        if (!(mask >> r & 1)) continue;
        double highest = 0.0;
        int32_t at = -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            double ms = self->lats[(size_t)chosen[i] * self->regions + r];
            if (at < 0 || ms > highest) {
                highest = ms;
                at = chosen[i];
            }
        }
        if (at >= 0 && (*column < 0 || highest < best)) {
            *column = r;
            *ticket = at;
            best = highest;
        }
    }
}

/* A match's figures (of teams alike, without a rating rule) into the pointers: the teams' ticket ids (a new tuple of tuples), the skill
 * spread, the longest wait, the region's column and the ticket with the worst latency there; -1 on
 * error. */
static int describe_match(Loop *self, PyObject *chosen_list, int size, uint64_t mask, int balance, PyObject **ids,
                          double *spread, double *longest, int *column, int32_t *worst_ticket) {
    int32_t *order = NULL, *teams = NULL;
    int *lengths = NULL, ok = -1;
    *ids = NULL;
    if (!self->ids || !self->configured) {
        PyErr_SetString(PyExc_RuntimeError, "set_proposals() and configure() first");
        return -1;
    }
    int count = self->count;
    Py_ssize_t n = PyList_GET_SIZE(chosen_list);
    if (read_chosen(self, chosen_list, count, &order, &teams, &lengths) < 0) goto done;
    int32_t oldest = order[0];
    for (Py_ssize_t i = 1; i < n; i++)
        if (order[i] < oldest) oldest = order[i];
    lowest_worst(self, order, n, mask, column, worst_ticket); /* before build_teams reorders */
    if (build_teams(self, order, n, size, count, balance, teams, lengths) < 0) goto done;
    double low = 0.0, high = 0.0;
    *ids = PyTuple_New(count);
    if (!*ids) goto done;
    for (int c = 0; c < count; c++) {
        const int32_t *members = teams + (size_t)c * n;
        double total = team_sum(self, members, lengths[c]);
        if (c == 0 || total > high) high = total;
        if (c == 0 || total < low) low = total;
        PyObject *team = PyTuple_New(lengths[c]);
        if (!team) goto done;
        for (int i = 0; i < lengths[c]; i++) {
            PyObject *id = PyList_GET_ITEM(self->ids, members[i]);
            Py_INCREF(id);
            PyTuple_SET_ITEM(team, i, id);
        }
        PyTuple_SET_ITEM(*ids, c, team);
    }
    *spread = balance && count > 1 ? (high - low) / size : 0.0;
    *longest = self->now - self->enqueued[oldest];
    if (!(*longest > 0.0)) *longest = 0.0;
    ok = 0;
done:
    if (ok < 0) Py_CLEAR(*ids);
    free(order);
    free(teams);
    free(lengths);
    return ok;
}

/* set_proposals(ids, latencies, regions, team_names, balance, proposal, quality): what ``propose``
 * needs to make a match's Proposal itself: each ticket's id and latencies (a list of dicts, or None
 * without a latency rule), the region names by column, the queue's team names, whether teams are
 * balanced, and the Proposal and MatchQuality types (matchmaker.models). */
static PyObject *Loop_set_proposals(Loop *self, PyObject *args) {
    PyObject *ids, *lats, *regions, *names, *proposal, *quality;
    int balance;
    if (!PyArg_ParseTuple(args, "O!OO!O!pOO", &PyList_Type, &ids, &lats, &PyList_Type, &regions, &PyTuple_Type, &names,
                          &balance, &proposal, &quality))
        return NULL;
    if (PyList_GET_SIZE(ids) != self->n || (lats != Py_None && (!PyList_Check(lats) || PyList_GET_SIZE(lats) != self->n))) {
        PyErr_SetString(PyExc_ValueError, "an id and latencies (or None) per ticket");
        return NULL;
    }
    PyObject *kept[] = {ids, lats, regions, names, proposal, quality};
    for (int i = 0; i < 6; i++) Py_INCREF(kept[i]);
    Py_XSETREF(self->ids, ids);
    Py_XSETREF(self->proposal_lats, lats);
    Py_XSETREF(self->region_names, regions);
    Py_XSETREF(self->team_names, names);
    Py_XSETREF(self->proposal_type, proposal);
    Py_XSETREF(self->quality_type, quality);
    self->balance = balance;
    Py_RETURN_NONE;
}

/* propose(chosen, size, mask): the Proposal of a match of teams alike without a rating rule, from
 * ``describe_match``'s figures, as matching._Tick._proposal makes it (the worst latency is the ticket's
 * own value: an integer stays an integer). */
static PyObject *Loop_propose(Loop *self, PyObject *args) {
    PyObject *chosen;
    int size, column;
    unsigned long long mask;
    double spread, longest;
    int32_t ticket;
    if (!PyArg_ParseTuple(args, "O!iK", &PyList_Type, &chosen, &size, &mask)) return NULL;
    if (!self->proposal_type) {
        PyErr_SetString(PyExc_RuntimeError, "set_proposals() first");
        return NULL;
    }
    PyObject *ids, *result = NULL, *quality = NULL, *roles = NULL, *region = NULL, *worst = NULL, *figures[5] = {NULL};
    if (describe_match(self, chosen, size, mask, self->balance, &ids, &spread, &longest, &column, &ticket) < 0)
        return NULL;
    if (column >= 0) {
        if (self->proposal_lats == Py_None || column >= PyList_GET_SIZE(self->region_names)) {
            PyErr_SetString(PyExc_RuntimeError, "a region without latencies");
            goto done;
        }
        region = PyList_GET_ITEM(self->region_names, column);
        Py_INCREF(region);
        worst = PyObject_GetItem(PyList_GET_ITEM(self->proposal_lats, ticket), region);
    } else {
        region = PyUnicode_FromString("");
        worst = Py_NewRef(Py_None);
    }
    figures[0] = PyFloat_FromDouble(spread);
    figures[1] = worst;
    figures[2] = PyFloat_FromDouble(longest);
    figures[3] = Py_None;
    figures[4] = PyTuple_New(0);
    if (!region || !worst || !figures[0] || !figures[2] || !figures[4]) goto done;
    quality = PyObject_Vectorcall(self->quality_type, figures, 5, NULL);
    roles = quality ? PyDict_New() : NULL;
    if (!roles) goto done;
    PyObject *fields[] = {ids, region, quality, roles, self->team_names};
    result = PyObject_Vectorcall(self->proposal_type, fields, 5, NULL);
done:
    Py_DECREF(ids);
    Py_XDECREF(region);
    Py_XDECREF(worst);
    Py_XDECREF(figures[0]);
    Py_XDECREF(figures[2]);
    Py_XDECREF(figures[4]);
    Py_XDECREF(quality);
    Py_XDECREF(roles);
    return result;
}

/* usable(ticket, window): the regions (bit mask) the ticket reaches within ``window`` ms. */
static PyObject *Loop_usable(Loop *self, PyObject *args) {
    long ticket;
    double window;
    if (!PyArg_ParseTuple(args, "ld", &ticket, &window)) return NULL;
    if (!check_ticket(self, ticket)) return NULL;
    return PyLong_FromUnsignedLongLong(usable(self, (int32_t)ticket, window));
}

/* region(chosen, mask): (column, ticket): of the regions in ``mask``, the one whose worst latency
 * over ``chosen`` is lowest (ties: the lowest column), and the first ticket with that worst. */
static PyObject *Loop_region(Loop *self, PyObject *args) {
    PyObject *chosen;
    unsigned long long mask;
    int32_t *tickets = NULL;
    if (!PyArg_ParseTuple(args, "O!K", &PyList_Type, &chosen, &mask)) return NULL;
    if (read_tickets(self, chosen, &tickets) < 0) {
        free(tickets);
        return NULL;
    }
    int column;
    int32_t ticket;
    lowest_worst(self, tickets, PyList_GET_SIZE(chosen), mask, &column, &ticket);
    free(tickets);
    return Py_BuildValue("(ii)", column, (int)ticket);
}

/* One list of tuples of ints (per ticket) as CSR arrays; -1 on error. */
static int csr(Loop *self, PyObject *list, int32_t **start, int32_t **values) {
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != self->n) {
        PyErr_SetString(PyExc_ValueError, "a tuple per ticket");
        return -1;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t t = 0; t < self->n; t++) {
        PyObject *row = PyList_GET_ITEM(list, t);
        if (!PyTuple_Check(row)) {
            PyErr_SetString(PyExc_TypeError, "a tuple per ticket");
            return -1;
        }
        total += PyTuple_GET_SIZE(row);
    }
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many");
        return -1;
    }
    free(*start);
    free(*values);
    *start = malloc(sizeof(int32_t) * (self->n + 1));
    *values = malloc(sizeof(int32_t) * (total ? total : 1));
    if (!*start || !*values) {
        PyErr_NoMemory();
        return -1;
    }
    int32_t at = 0;
    for (Py_ssize_t t = 0; t < self->n; t++) {
        PyObject *row = PyList_GET_ITEM(list, t);
        (*start)[t] = at;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(row); i++) {
            long v = PyLong_AsLong(PyTuple_GET_ITEM(row, i));
            if (v == -1 && PyErr_Occurred()) return -1;
            (*values)[at++] = (int32_t)v;
        }
    }
    (*start)[self->n] = at;
    return 0;
}

/* set_blocks(avoid, ids): per ticket, the numbers of the players it must not meet (both ways), and
 * of its own players that anyone must not meet (matching._Tick.avoid and .ids, numbered). */
static PyObject *Loop_set_blocks(Loop *self, PyObject *args) {
    PyObject *avoid, *ids;
    if (!PyArg_ParseTuple(args, "OO", &avoid, &ids)) return NULL;
    self->has_blocks = 0;
    if (csr(self, avoid, &self->avoid_start, &self->avoid_values) < 0) return NULL;
    if (csr(self, ids, &self->ids_start, &self->ids_values) < 0) return NULL;
    self->has_blocks = 1;
    Py_RETURN_NONE;
}

/* set_roles(offers, pids, roles, caps, named, max_size): role slots for the selection (matching._Placer).
 * ``offers``: per ticket, per player, the roles offered (a tuple of names; empty: any); ``pids``: per
 * ticket, its players' ids; ``roles``:
 * per team, its (role, slots) pairs; ``caps``: per team, its size (read for named teams only).
 * ValueError for what the C selection does not hold (a team of more than MAX_TEAM_ROLES roles, more
 * than MAX_OFFER_ROLES roles in all): the selection then stays in Python. */
static PyObject *Loop_set_roles(Loop *self, PyObject *args) {
    PyObject *offers, *pids, *roles, *caps, *bits = NULL, *kinds = NULL;
    int named, max_size;
    if (!PyArg_ParseTuple(args, "O!O!O!O!pi", &PyList_Type, &offers, &PyList_Type, &pids, &PyList_Type, &roles,
                          &PyList_Type, &caps, &named, &max_size))
        return NULL;
    Py_ssize_t nteams = PyList_GET_SIZE(roles);
    if (PyList_GET_SIZE(offers) != self->n || PyList_GET_SIZE(pids) != self->n || PyList_GET_SIZE(caps) != nteams ||
        nteams <= 0 || nteams > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "offers per ticket, roles and caps per team");
        return NULL;
    }
    if (self->team_roles) {
        PyErr_SetString(PyExc_RuntimeError, "roles already set");
        return NULL;
    }
    self->team_roles = calloc(nteams, sizeof(struct TeamRoles));
    self->team_caps = calloc(nteams, sizeof(int));
    bits = PyDict_New(); /* role name -> its bit */
    if (!self->team_roles || !self->team_caps || !bits) goto nomemory;
    self->nteams = (int)nteams;
    for (Py_ssize_t team = 0; team < nteams; team++) {
        struct TeamRoles *tr = &self->team_roles[team];
        PyObject *pairs = PyList_GET_ITEM(roles, team);
        long cap = PyLong_AsLong(PyList_GET_ITEM(caps, team));
        if (cap == -1 && PyErr_Occurred()) goto fail;
        self->team_caps[team] = (int)cap;
        if (!PyTuple_Check(pairs)) {
            PyErr_SetString(PyExc_TypeError, "a tuple of (role, slots) per team");
            goto fail;
        }
        if (PyTuple_GET_SIZE(pairs) > MAX_TEAM_ROLES) {
            PyErr_SetString(PyExc_ValueError, "too many roles in a team");
            goto fail;
        }
        int *counts = tr->counts;
        for (int i = 0; i < (int)PyTuple_GET_SIZE(pairs); i++) {
            PyObject *name;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(pairs, i), "Ui", &name, &counts[i])) goto fail;
            if (counts[i] < 0) {
                PyErr_SetString(PyExc_ValueError, "a role's slots below 0");
                goto fail;
            }
            Py_INCREF(name);
            tr->names[tr->nroles++] = name;
            PyObject *bit = PyDict_GetItemWithError(bits, name);
            if (!bit) {
                if (PyErr_Occurred()) goto fail;
                if (PyDict_GET_SIZE(bits) >= MAX_OFFER_ROLES) {
                    PyErr_SetString(PyExc_ValueError, "too many roles");
                    goto fail;
                }
                bit = PyLong_FromUnsignedLong(1UL << PyDict_GET_SIZE(bits));
                if (!bit || PyDict_SetItem(bits, name, bit) < 0) {
                    Py_XDECREF(bit);
                    goto fail;
                }
                Py_DECREF(bit); /* the dict holds it */
            }
            tr->bits[i] = (uint32_t)PyLong_AsUnsignedLong(bit);
        }
        uint32_t subsets = (uint32_t)1 << tr->nroles;
        tr->slots = calloc(subsets, sizeof(int));
        tr->need = calloc(subsets, sizeof(int));
        if (!tr->slots || !tr->need) goto nomemory;
        for (uint32_t s = 0; s < subsets; s++)
            for (int i = 0; i < tr->nroles; i++)
                if (s & ((uint32_t)1 << i)) {
                    tr->slots[s] += counts[i];
                    tr->need[s] += counts[i] > 0;
                }
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t t = 0; t < self->n; t++) {
        PyObject *row = PyList_GET_ITEM(offers, t);
        if (PyTuple_Check(row)) total += PyTuple_GET_SIZE(row); /* not a tuple: a ticket never eligible */
    }
    self->offer_start = malloc(sizeof(int32_t) * (self->n + 1));
    self->offer_masks = malloc(sizeof(uint32_t) * (total ? total : 1));
    self->kinds = malloc(sizeof(int32_t) * (self->n ? self->n : 1));
    kinds = PyDict_New(); /* offers -> their number */
    if (!self->offer_start || !self->offer_masks || !self->kinds || !kinds || total > INT32_MAX) goto nomemory;
    int32_t at = 0;
    for (Py_ssize_t t = 0; t < self->n; t++) {
        PyObject *row = PyList_GET_ITEM(offers, t);
        self->offer_start[t] = at;
        self->kinds[t] = -1;
        if (!PyTuple_Check(row)) continue;
        PyObject *kind = PyDict_GetItemWithError(kinds, row);
        if (!kind) {
            if (PyErr_Occurred()) goto fail;
            kind = PyLong_FromSsize_t(PyDict_GET_SIZE(kinds));
            if (!kind || PyDict_SetItem(kinds, row, kind) < 0) {
                Py_XDECREF(kind);
                goto fail;
            }
            Py_DECREF(kind); /* the dict holds it */
        }
        self->kinds[t] = (int32_t)PyLong_AsLong(kind);
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(row); p++) {
            PyObject *offered = PyTuple_GET_ITEM(row, p);
            if (!PyTuple_Check(offered)) {
                PyErr_SetString(PyExc_TypeError, "a tuple of role names per player");
                goto fail;
            }
            uint32_t mask = PyTuple_GET_SIZE(offered) ? 0 : ANY_ROLE;
            for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(offered); r++) {
                PyObject *bit = PyDict_GetItemWithError(bits, PyTuple_GET_ITEM(offered, r));
                if (bit) mask |= (uint32_t)PyLong_AsUnsignedLong(bit); /* a role no team has: no slot */
                else if (PyErr_Occurred()) goto fail;
            }
            self->offer_masks[at++] = mask;
        }
        PyObject *ids = PyList_GET_ITEM(pids, t);
        if (!PyTuple_Check(ids) || PyTuple_GET_SIZE(ids) != PyTuple_GET_SIZE(row)) {
            PyErr_SetString(PyExc_ValueError, "a player id per offer");
            goto fail;
        }
    }
    Py_INCREF(pids);
    self->pids = pids;
    self->offer_start[self->n] = at;
    self->named = named;
    self->max_size = max_size;
    self->has_roles = 1;
    Py_DECREF(bits);
    Py_DECREF(kinds);
    Py_RETURN_NONE;
nomemory:
    PyErr_NoMemory();
fail:
    Py_XDECREF(bits);
    Py_XDECREF(kinds);
    return NULL;
}

/* -- the seed loop (matchmaker.matching._Tick.run and the first pass of _match) ---------------- */

/* A window spec from Python: None, or (base, per second, cap, ((after, value), ...)). */
static int parse_window(PyObject *spec, struct Window *w) {
    PyObject *steps;
    free(w->after);
    free(w->value);
    memset(w, 0, sizeof(*w));
    if (spec == Py_None) return 0;
    if (!PyArg_ParseTuple(spec, "dddO!", &w->base, &w->rate, &w->cap, &PyTuple_Type, &steps)) return -1;
    w->present = 1;
    w->nsteps = PyTuple_GET_SIZE(steps);
    if (w->nsteps) {
        w->after = malloc(sizeof(double) * w->nsteps);
        w->value = malloc(sizeof(double) * w->nsteps);
        if (!w->after || !w->value) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < w->nsteps; i++)
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(steps, i), "dd", &w->after[i], &w->value[i])) return -1;
    }
    return 0;
}

/* matching._window_function's functions: steps, or min(cap, base + rate * wait). */
static double window_at(const struct Window *w, double wait) {
    if (!w->present) return INFINITY;
    if (w->nsteps) {
        double value = w->base;
        for (Py_ssize_t i = 0; i < w->nsteps; i++) {
            if (w->after[i] > wait) break;
            value = w->value[i];
        }
        return value;
    }
    double v = w->base + w->rate * wait;
    return v < w->cap ? v : w->cap;
}

/* configure(now, enqueued, ok, distance, latency, cap, count, scan, smallest, wait_for_full): the
 * tick's settings for ``next``. */
static PyObject *Loop_configure(Loop *self, PyObject *args) {
    PyObject *enqueued, *ok_list, *distance, *latency;
    if (!PyArg_ParseTuple(args, "dO!O!OOiindd", &self->now, &PyList_Type, &enqueued, &PyList_Type, &ok_list, &distance,
                          &latency, &self->cap, &self->count, &self->scan, &self->smallest, &self->wait_for_full))
        return NULL;
    if (PyList_GET_SIZE(enqueued) != self->n || PyList_GET_SIZE(ok_list) != self->n || self->count <= 0) {
        PyErr_SetString(PyExc_ValueError, "enqueued and ok must have a value per ticket");
        return NULL;
    }
    if (parse_window(distance, &self->distance) < 0 || parse_window(latency, &self->latency) < 0) return NULL;
    self->check_latency = latency != Py_None;
    free(self->enqueued);
    free(self->taken);
    self->enqueued = malloc(sizeof(double) * (self->n ? self->n : 1));
    self->taken = malloc(self->n ? self->n : 1);
    if (!self->enqueued || !self->taken) return PyErr_NoMemory();
    for (Py_ssize_t t = 0; t < self->n; t++) {
        int eligible = PyObject_IsTrue(PyList_GET_ITEM(ok_list, t));
        if (eligible < 0) return NULL;
        self->taken[t] = !eligible || self->part[t] < 0;
        self->enqueued[t] = eligible ? PyFloat_AsDouble(PyList_GET_ITEM(enqueued, t)) : 0.0;
        if (eligible && self->enqueued[t] == -1.0 && PyErr_Occurred()) return NULL;
    }
    self->configured = 1;
    Py_RETURN_NONE;
}

/* next(start): from seed ``start`` on (oldest first), the next seed whose first pass formed a full
 * match (its tickets are taken) or that Python must go on with (another region to try, or smaller
 * teams): (seed, chosen, seed's regions, chosen's regions, full, gathered (empty when full), latency
 * misses); None when no seed is left. Seeds with no usable region, or no match and nothing more to try, are
 * passed over, as matching._Tick._match returns None for them. */
static PyObject *Loop_next(Loop *self, PyObject *arg) {
    Py_ssize_t start = PyLong_AsSsize_t(arg);
    if (start == -1 && PyErr_Occurred()) return NULL;
    if (!self->configured) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    for (Py_ssize_t seed = start < 0 ? 0 : start; seed < self->n; seed++) {
        if (self->taken[seed]) continue;
        double wait = self->now - self->enqueued[seed];
        if (!(wait > 0.0)) wait = 0.0; /* max(0.0, now - enqueued) */
        double window = window_at(&self->distance, wait);
        double latency_window = window_at(&self->latency, wait);
        uint64_t mask = 0;
        if (self->check_latency) {
            mask = usable(self, (int32_t)seed, latency_window);
            if (!mask) continue;
        }
        double key = self->keys[seed];
        double low = self->distance.present ? key - window : -INFINITY;
        double high = self->distance.present ? key + window : INFINITY;
        double spread = self->distance.present ? window : INFINITY;
        Index *index = &self->indexes[self->part[seed]];
        Walk w;
        if (self->sizes[seed] > self->cap) {
            w.left_to_scan = 0;
            w.index = index;
        } else {
            walk_start(&w, index, self->pos[seed], low, high, self->scan);
        }
        PyObject *got = run_select(self, (long)seed, &w, NULL, self->cap, self->count, mask, spread,
                                   self->check_latency, latency_window);
        if (!got) return NULL;
        /* got: (chosen, mask, full, gathered, misses) */
        int full = PyObject_IsTrue(PyTuple_GET_ITEM(got, 2));
        Py_ssize_t misses = PyLong_AsSsize_t(PyTuple_GET_ITEM(got, 4));
        int more_regions = (mask & (mask - 1)) && misses;
        int smaller = !(wait < self->wait_for_full || self->smallest >= self->cap || self->named);
        if (!full && !more_regions && !smaller) {
            Py_DECREF(got);
            continue;
        }
        if (full) {
            PyObject *chosen = PyTuple_GET_ITEM(got, 0);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(chosen); i++) take(self, (int32_t)PyLong_AsLong(PyList_GET_ITEM(chosen, i)));
        }
        PyObject *out = Py_BuildValue("(nOKOOOO)", seed, PyTuple_GET_ITEM(got, 0), (unsigned long long)mask,
                                      PyTuple_GET_ITEM(got, 1), PyTuple_GET_ITEM(got, 2), PyTuple_GET_ITEM(got, 3),
                                      PyTuple_GET_ITEM(got, 4));
        Py_DECREF(got);
        return out;
    }
    Py_RETURN_NONE;
}

/* -- the tick's rows in age order (matchmaker.matching._by_age) -------------------------------- */

typedef struct {
    double enqueued;
    PyObject *id;
    Py_ssize_t at; /* its place in the input: equal times and ids keep it (a stable sort) */
    PyObject *row;
} Aged;

static int by_time(const void *a, const void *b) {
    const Aged *x = a, *y = b;
    if (x->enqueued < y->enqueued) return -1;
    if (x->enqueued > y->enqueued) return 1;
    return (x->at > y->at) - (x->at < y->at);
}

static int by_id(const void *a, const void *b) {
    const Aged *x = a, *y = b;
    int c = PyUnicode_Compare(x->id, y->id); /* str order; both are str (checked) */
    if (c) return c;
    return (x->at > y->at) - (x->at < y->at);
}

/* A time as a double, exactly (a float, or an int within 2**53); 0 if it is neither. */
static int exact_time(PyObject *value, double *out) {
    int ok = 1;
    *out = as_double(value, &ok);
    return ok;
}

/* by_age(rows, now): matching._by_age in C: the rows of queued (row[5]), unexpired (not
 * 0 < row[4] <= now) tickets by enqueue time (row[3]), equal times by id (row[2]), and then, only
 * if two times were equal, the same id twice in a row kept once; None for rows whose times are not
 * exactly doubles or whose ids are not str (the Python function then runs). */
static PyObject *by_age(PyObject *module, PyObject *args) {
    PyObject *rows;
    double now;
    if (!PyArg_ParseTuple(args, "O!d", &PyList_Type, &rows, &now)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows), live = 0;
    Aged *aged = PyMem_Malloc(sizeof(Aged) * (n ? n : 1));
    if (!aged) return PyErr_NoMemory();
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 6) {
            PyErr_SetString(PyExc_TypeError, "rows are tuples");
            goto done;
        }
        int queued = PyObject_IsTrue(PyTuple_GET_ITEM(row, 5));
        if (queued < 0) goto done;
        if (!queued) continue;
        double expires, enqueued;
        PyObject *id = PyTuple_GET_ITEM(row, 2);
        if (!exact_time(PyTuple_GET_ITEM(row, 4), &expires) || !exact_time(PyTuple_GET_ITEM(row, 3), &enqueued) ||
            !PyUnicode_CheckExact(id) || isnan(enqueued) || isnan(expires)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (0 < expires && expires <= now) continue;
        aged[live++] = (Aged){enqueued, id, i, row};
    }
    qsort(aged, live, sizeof(Aged), by_time);
    int ties = 0;
    for (Py_ssize_t i = 1; i < live && !ties; i++) ties = aged[i].enqueued == aged[i - 1].enqueued;
    if (ties) { /* each run of equal times in id order */
        for (Py_ssize_t start = 0, end; start < live; start = end) {
            for (end = start + 1; end < live && aged[end].enqueued == aged[start].enqueued; end++) {
            }
            if (end - start > 1) qsort(aged + start, end - start, sizeof(Aged), by_id);
        }
    }
    result = PyList_New(0);
    if (!result) goto done;
    for (Py_ssize_t i = 0; i < live; i++) {
        if (ties && i > 0) { /* the same ticket twice (a snapshot may repeat one): kept once */
            int same = PyUnicode_Compare(aged[i].id, aged[i - 1].id) == 0;
            if (same) continue;
        }
        if (PyList_Append(result, aged[i].row) < 0) {
            Py_CLEAR(result);
            goto done;
        }
    }
done:
    PyMem_Free(aged);
    return result;
}

static PyMethodDef Loop_methods[] = {
    {"add_index", (PyCFunction)Loop_add_index, METH_O, "A partition's tickets, sorted here by key; its number."},
    {"take", (PyCFunction)Loop_take, METH_O, "The ticket is matched: walks skip it from now on."},
    {"walk", (PyCFunction)Loop_walk, METH_VARARGS, "The free tickets nearest the seed's key, at most scan."},
    {"select_from", (PyCFunction)Loop_select_from, METH_VARARGS, "Greedy selection over candidates: (chosen, mask, full, misses)."},
    {"set_blocks", (PyCFunction)Loop_set_blocks, METH_VARARGS, "Per ticket, the players it must not meet, and its own."},
    {"configure", (PyCFunction)Loop_configure, METH_VARARGS, "The tick's settings for next()."},
    {"next", (PyCFunction)Loop_next, METH_O, "The next seed with a full match, or one Python must go on with."},
    {"usable", (PyCFunction)Loop_usable, METH_VARARGS, "The regions a ticket reaches within a window, as a mask."},
    {"region", (PyCFunction)Loop_region, METH_VARARGS, "(column, ticket): the region of lowest worst latency."},
    {"set_roles", (PyCFunction)Loop_set_roles, METH_VARARGS, "Role slots per team and the roles each player offers."},
    {"placed_teams", (PyCFunction)Loop_placed_teams, METH_VARARGS, "Teams as the last full selection placed them, balanced."},
    {"set_proposals", (PyCFunction)Loop_set_proposals, METH_VARARGS, "What propose() needs to make Proposals."},
    {"propose", (PyCFunction)Loop_propose, METH_VARARGS, "A match's Proposal (teams alike, no rating rule)."},
    {"teams", (PyCFunction)Loop_teams, METH_VARARGS, "Balanced teams of the chosen tickets and their strength sums."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "matchmaker._matchloop.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One tick's tickets and sorted indexes, for the walk and the selection in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
};

static PyMethodDef module_functions[] = {
    {"by_age", by_age, METH_VARARGS, "The tick's live rows, oldest first (matching._by_age)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "matchmaker._matchloop", "The default match function's inner loop in C.", -1,
    module_functions,
};

PyMODINIT_FUNC PyInit__matchloop(void) {
    if (PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(&LoopType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "PACK_BUDGET", PACK_BUDGET) < 0 || PyModule_AddIntConstant(m, "MAX_REGIONS", MAX_REGIONS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
