/* A rating queue's per-match arithmetic in C: matchmaker.ratings.balance (the brute-force split of
 * two teams, ``_best_split``, then ``predict``) step for step on flat arrays. The matcher balances
 * and predicts every match of a rating queue, and in Python that was most of a rated tick.
 *
 * Same floats as the Python code, by doing the same operations in the same order:
 * - ``sum()`` of floats is plain left-to-right double addition on CPython 3.11 (3.12 compensates):
 *   matchmaker.ratings turns this module off on 3.12 and later;
 * - ``sigma**2`` is CPython's float_pow: libm's pow on |sigma| (through a volatile 2.0, so the
 *   compiler cannot turn it into sigma * sigma);
 * - OpenSkill's ``phi_major`` is ``statistics.NormalDist().cdf``: 0.5 * (1 + erf(x / sqrt(2))),
 *   with libm's erf, which CPython 3.11's math.erf calls directly;
 * - no fused multiply-add: GCC's -std=c11 implies -ffp-contract=off, and clang is told below.
 * Anything the Python code would do differently (a rating that is not a float, not finite, an
 * overflow, a malformed split: the cases where it raises) makes ``balance`` return None, and the
 * caller runs the Python code, which then does exactly what it always did.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define MAX_SPLIT_PARTIES 64 /* best_split's arrays; BRUTE_FORCE_PARTIES is 10 */

static double SQRT2; /* statistics._SQRT2: sqrt(2.0) */
static PyObject *MU, *SIGMA;

typedef struct {
    Py_ssize_t nparties, nplayers;
    Py_ssize_t *party_start; /* party p's players: [party_start[p], party_start[p + 1]) */
    double *mu, *var, *ordinal;  /* per player */
    double *party_mu;            /* per party: its players' mu summed in order */
    Py_ssize_t nteams;
    Py_ssize_t *team_start; /* team t's parties: team_parties[team_start[t]..team_start[t + 1]) */
    Py_ssize_t *team_parties;
    double *scratch_mu, *scratch_var, *scratch_ord; /* one team's players, while sorted */
} Match;

/* -- reading the arguments (0: not a case the C code reproduces; no exception set) ----------- */

/* ``rating``'s mu and sigma^2 (CPython's ``sigma**2``) and its ordinal, OpenSkill's
 * ``mu - 3 sigma``. */
static int read_rating(PyObject *rating, double *mu, double *var, double *ordinal) {
    PyObject *m = PyObject_GetAttr(rating, MU);
    PyObject *s = m ? PyObject_GetAttr(rating, SIGMA) : NULL;
    int ok = m && s && PyFloat_CheckExact(m) && PyFloat_CheckExact(s);
    if (ok) {
        volatile double two = 2.0;
        double sigma = PyFloat_AS_DOUBLE(s);
        *mu = PyFloat_AS_DOUBLE(m);
        *var = pow(fabs(sigma), two);
        *ordinal = *mu - 3.0 * sigma;
        ok = isfinite(*mu) && isfinite(sigma) && isfinite(*var); /* Python: OverflowError */
    }
    Py_XDECREF(m);
    Py_XDECREF(s);
    if (PyErr_Occurred()) PyErr_Clear();
    return ok;
}

/* A list or tuple's length and items, or -1 for anything else. */
static Py_ssize_t items_of(PyObject *seq, PyObject ***items) {
    if (PyList_CheckExact(seq)) {
        *items = ((PyListObject *)seq)->ob_item;
        return PyList_GET_SIZE(seq);
    }
    if (PyTuple_CheckExact(seq)) {
        *items = ((PyTupleObject *)seq)->ob_item;
        return PyTuple_GET_SIZE(seq);
    }
    return -1;
}

static void match_free(Match *m) {
    PyMem_Free(m->party_start);
    PyMem_Free(m->mu);
    PyMem_Free(m->team_start);
    memset(m, 0, sizeof *m);
}

/* The parties' ratings; 0 (nothing to free) or 1 (m's arrays allocated). -1: out of memory. */
static int read_parties(Match *m, PyObject *parties) {
    PyObject **party_list, **players;
    Py_ssize_t n = items_of(parties, &party_list), total = 0;
    if (n < 1) return 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_ssize_t size = items_of(party_list[p], &players);
        if (size < 1) return 0; /* an empty party: Python divides by zero or refuses the team */
        total += size;
    }
    m->party_start = PyMem_Malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    m->mu = PyMem_Malloc((size_t)(6 * total + n) * sizeof(double));
    if (!m->party_start || !m->mu) return -1;
    m->var = m->mu + total;
    m->ordinal = m->var + total;
    m->scratch_mu = m->ordinal + total;
    m->scratch_var = m->scratch_mu + total;
    m->scratch_ord = m->scratch_var + total;
    m->party_mu = m->scratch_ord + total;
    m->nparties = n;
    m->nplayers = total;
    Py_ssize_t at = 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_ssize_t size = items_of(party_list[p], &players);
        double sum = 0.0; /* sum([r.mu for r in p]): 0 + the first is the first (and -0.0 is 0.0) */
        m->party_start[p] = at;
        for (Py_ssize_t i = 0; i < size; i++, at++) {
            if (!read_rating(players[i], &m->mu[at], &m->var[at], &m->ordinal[at])) return 0;
            sum += m->mu[at];
        }
        m->party_mu[p] = sum;
    }
    m->party_start[n] = at;
    return 1;
}

/* The greedy split: lists of party indexes. 1 read, 0 not reproduced, -1 out of memory. */
static int read_teams(Match *m, PyObject *greedy) {
    PyObject **teams, **members;
    Py_ssize_t count = items_of(greedy, &teams), total = 0;
    if (count < 2) return 0; /* predict refuses it */
    for (Py_ssize_t t = 0; t < count; t++) {
        Py_ssize_t size = items_of(teams[t], &members);
        if (size < 0) return 0;
        total += size;
    }
    m->team_start = PyMem_Malloc((size_t)(count + 1 + total + 2 * m->nparties) * sizeof(Py_ssize_t));
    if (!m->team_start) return -1;
    m->team_parties = m->team_start + count + 1;
    m->nteams = count;
    Py_ssize_t at = 0;
    for (Py_ssize_t t = 0; t < count; t++) {
        Py_ssize_t size = items_of(teams[t], &members), players = 0;
        m->team_start[t] = at;
        for (Py_ssize_t i = 0; i < size; i++) {
            Py_ssize_t index = PyLong_CheckExact(members[i]) ? PyLong_AsSsize_t(members[i]) : -1;
            if (index < 0 || index >= m->nparties) { /* Python would index from the end, or fail */
                if (PyErr_Occurred()) PyErr_Clear();
                return 0;
            }
            m->team_parties[at++] = index;
            players += m->party_start[index + 1] - m->party_start[index];
        }
        if (players > m->nplayers) return 0; /* a party twice: more than team_sums' scratch holds */
    }
    m->team_start[count] = at;
    return 1;
}

/* -- the split: ratings._best_split --------------------------------------------------------- */

/* sum(map(mu_of, parties), start): left to right from ``start``. */
static double mu_sum(const Match *m, const Py_ssize_t *parties, Py_ssize_t k, double start) {
    for (Py_ssize_t i = 0; i < k; i++) start += m->party_mu[parties[i]];
    return start;
}

/* The next k-combination of 0..n-1 in itertools.combinations' order; 0 after the last. */
static int next_combination(Py_ssize_t *idx, Py_ssize_t k, Py_ssize_t n) {
    Py_ssize_t i = k - 1;
    while (i >= 0 && idx[i] == n - k + i) i--;
    if (i < 0) return 0;
    idx[i]++;
    for (Py_ssize_t j = i + 1; j < k; j++) idx[j] = idx[j - 1] + 1;
    return 1;
}

/* Of the splits with party 0 and ``k`` of the others in team 0 (the others numbered from 1),
 * those with ``need`` more players, in combinations' order: the first whose gap beats ``*gap`` by
 * more than 1e-9 replaces ``best`` (party 0 implied), and so on. */
static void try_splits(const Match *m, Py_ssize_t k, Py_ssize_t need, double total, double *gap, Py_ssize_t *best,
                       Py_ssize_t *best_k) {
    Py_ssize_t idx[MAX_SPLIT_PARTIES], rest = m->nparties - 1;
    if (k > rest) return;
    for (Py_ssize_t i = 0; i < k; i++) idx[i] = i;
    do {
        Py_ssize_t players = 0;
        double sum = m->party_mu[0];
        for (Py_ssize_t i = 0; i < k; i++) {
            Py_ssize_t p = idx[i] + 1;
            players += m->party_start[p + 1] - m->party_start[p];
            sum += m->party_mu[p];
        }
        if (players != need) continue;
        double g = fabs(total - 2.0 * sum);
        if (g < *gap - 1e-9) {
            *gap = g;
            *best_k = k;
            for (Py_ssize_t i = 0; i < k; i++) best[i] = idx[i] + 1;
        }
    } while (next_combination(idx, k, rest));
}

/* ``_best_split``: two teams, every split of at most ``BRUTE_FORCE_PARTIES`` parties, the first
 * party in team 0. Rewrites m's teams; 0 where Python raises (a negative party count). */
static int best_split(Match *m, Py_ssize_t size) {
    Py_ssize_t n = m->nparties, first_size = m->party_start[1] - m->party_start[0];
    double total = 0.0; /* sum(mus) */
    for (Py_ssize_t p = 0; p < n; p++) total += m->party_mu[p];
    double gap = fabs(total - 2.0 * mu_sum(m, m->team_parties, m->team_start[1], 0.0));
    Py_ssize_t best[MAX_SPLIT_PARTIES], best_k = -1, need = size - first_size;
    int mixed = 0;
    for (Py_ssize_t p = 1; p < n; p++) mixed |= m->party_start[p + 1] - m->party_start[p] != first_size;
    if (mixed) {
        for (Py_ssize_t k = 0; k < n; k++) try_splits(m, k, need, total, &gap, best, &best_k);
    } else {
        Py_ssize_t k = size / first_size - (size % first_size < 0) - 1; /* size // sizes[0] - 1 */
        if (k < 0) return 0; /* itertools.combinations: ValueError */
        try_splits(m, k, need, total, &gap, best, &best_k);
    }
    if (best_k < 0) return 1; /* the greedy split stands */
    Py_ssize_t *parties = m->team_parties, at = 0, chosen = 0;
    parties[at++] = 0;
    for (Py_ssize_t i = 0; i < best_k; i++) parties[at++] = best[i];
    m->team_start[1] = at;
    for (Py_ssize_t p = 1; p < n; p++) {
        if (chosen < best_k && best[chosen] == p)
            chosen++;
        else
            parties[at++] = p;
    }
    m->team_start[2] = at;
    m->nteams = 2;
    return 1;
}

/* -- the prediction: ratings.predict ------------------------------------------------------- */

/* OpenSkill's phi_major: statistics.NormalDist().cdf, the same operations. */
static double phi(double x) { return 0.5 * (1.0 + erf((x - 0.0) / (1.0 * SQRT2))); }

/* ``_team_sums``: team t's mu and sigma^2 summed over its players by descending ordinal (a stable
 * sort, as ``sorted(..., reverse=True)``: equal ordinals keep their order). Its players' count. */
static Py_ssize_t team_sums(Match *m, Py_ssize_t t, double *mu, double *var) {
    double *smu = m->scratch_mu, *svar = m->scratch_var, *sord = m->scratch_ord;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = m->team_start[t]; i < m->team_start[t + 1]; i++) {
        Py_ssize_t p = m->team_parties[i];
        for (Py_ssize_t r = m->party_start[p]; r < m->party_start[p + 1]; r++) {
            Py_ssize_t j = count++;
            for (; j > 0 && sord[j - 1] < m->ordinal[r]; j--) { /* insertion: teams are small */
                smu[j] = smu[j - 1], svar[j] = svar[j - 1], sord[j] = sord[j - 1];
            }
            smu[j] = m->mu[r], svar[j] = m->var[r], sord[j] = m->ordinal[r];
        }
    }
    double a = 0.0, b = 0.0;
    for (Py_ssize_t i = 0; i < count; i++) a += smu[i], b += svar[i];
    *mu = a;
    *var = b;
    return count;
}

/* Each team's chance to win into ``win`` (PyFloats in a tuple). 0: Python divides by zero. */
static int win_chances(const double *mu, const double *var, Py_ssize_t n, double spread, double *win) {
    if (n == 2) {
        double first = phi((mu[0] - mu[1]) / sqrt(spread + var[0] + var[1]));
        win[0] = first;
        win[1] = 1.0 - first;
        return 1;
    }
    double total = 0.0;
    for (Py_ssize_t a = 0; a < n; a++) { /* itertools.permutations(sums, 2): a's pairs together */
        double sum = 0.0;
        for (Py_ssize_t b = 0; b < n; b++) {
            if (b != a) sum += phi((mu[a] - mu[b]) / sqrt(spread + var[a] + var[b]));
        }
        win[a] = sum / (double)(n - 1);
        total += win[a];
    }
    if (total == 0.0) return 0;
    for (Py_ssize_t a = 0; a < n; a++) win[a] = win[a] / total;
    return 1;
}

/* The mean over pairs of teams of the chance they draw, with ``margin`` (``_draw_margin``). */
static double draw_chance(const double *mu, const double *var, Py_ssize_t n, double spread, double margin) {
    double sum = 0.0;
    Py_ssize_t pairs = 0;
    for (Py_ssize_t a = 0; a < n; a++) { /* itertools.combinations(sums, 2) */
        for (Py_ssize_t b = a + 1; b < n; b++, pairs++) {
            double c = sqrt(spread + var[a] + var[b]);
            sum += phi((margin - mu[a] + mu[b]) / c) - phi((mu[b] - mu[a] - margin) / c);
        }
    }
    return sum / (double)pairs;
}

/* -- the module ------------------------------------------------------------------------------ */

static PyObject *teams_list(const Match *m) {
    PyObject *out = PyList_New(m->nteams);
    for (Py_ssize_t t = 0; out && t < m->nteams; t++) {
        Py_ssize_t start = m->team_start[t], size = m->team_start[t + 1] - start;
        PyObject *team = PyList_New(size);
        if (!team) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, t, team);
        for (Py_ssize_t i = 0; i < size; i++) {
            PyObject *index = PyLong_FromSsize_t(m->team_parties[start + i]);
            if (!index) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(team, i, index);
        }
    }
    return out;
}

/* The teams (lists of party indexes), each team's win chance and the draw chance, as a tuple. */
static PyObject *prediction(Match *m, double spread, PyObject *margin_of) {
    Py_ssize_t n = m->nteams, players = 0;
    double *mu = PyMem_Malloc((size_t)(3 * n) * sizeof(double)), *var = mu + n, *win = var + n;
    if (!mu) return PyErr_NoMemory();
    PyObject *out = NULL, *margin = NULL;
    for (Py_ssize_t t = 0; t < n; t++) {
        Py_ssize_t count = team_sums(m, t, &mu[t], &var[t]);
        if (!count) goto refuse; /* a team without players: predict refuses it */
        players += count;
    }
    if (!win_chances(mu, var, n, spread, win)) goto refuse;
    margin = PyObject_CallFunction(margin_of, "n", players);
    double by = margin ? PyFloat_AsDouble(margin) : -1.0;
    if (by == -1.0 && PyErr_Occurred()) goto done;
    double draw = draw_chance(mu, var, n, spread, by);
    PyObject *wins = PyTuple_New(n);
    for (Py_ssize_t t = 0; wins && t < n; t++) {
        PyObject *chance = PyFloat_FromDouble(win[t]);
        if (!chance) Py_CLEAR(wins);
        else PyTuple_SET_ITEM(wins, t, chance);
    }
    PyObject *teams = wins ? teams_list(m) : NULL;
    if (teams) out = Py_BuildValue("(NNd)", teams, wins, draw);
    else Py_XDECREF(wins);
    goto done;
refuse:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(margin);
    PyMem_Free(mu);
    return out;
}

static PyObject *balance(PyObject *self, PyObject *args) {
    PyObject *parties, *greedy, *margin_of;
    Py_ssize_t size, brute_force;
    double spread;
    if (!PyArg_ParseTuple(args, "OOnndO:balance", &parties, &greedy, &size, &brute_force, &spread, &margin_of))
        return NULL;
    Match m;
    memset(&m, 0, sizeof m);
    PyObject *out = NULL;
    int got = read_parties(&m, parties);
    if (got > 0) got = read_teams(&m, greedy);
    if (got > 0 && m.nteams == 2 && m.nparties <= brute_force) /* every split (too many for the arrays: Python) */
        got = m.nparties <= MAX_SPLIT_PARTIES ? best_split(&m, size) : 0;
    if (got < 0)
        PyErr_NoMemory();
    else if (got == 0)
        out = Py_NewRef(Py_None);
    else
        out = prediction(&m, spread, margin_of);
    match_free(&m);
    return out;
}

static PyMethodDef methods[] = {
    {"balance", balance, METH_VARARGS,
     "balance(parties, greedy, size, brute_force, spread, margin_of) -> (teams, win, draw) | None\n"
     "matchmaker.ratings.balance's teams and prediction, the same floats; None: run the Python code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "matchmaker._ratingloop", "A rating queue's team balance and prediction in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ratingloop(void) {
    volatile double two = 2.0;
    SQRT2 = sqrt(two);
    MU = PyUnicode_InternFromString("mu");
    SIGMA = PyUnicode_InternFromString("sigma");
    if (!MU || !SIGMA) return NULL;
    return PyModule_Create(&module);
}
