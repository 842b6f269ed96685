// SMDP / n-step returns and option-critic bootstrap targets over raw [T, N] / [B, K] arrays.
// Each output element's math is one HRLKIT_HD function (host and device): the CPU loops below and
// the CUDA kernels in csrc/cuda call the same code, so the two backends cannot drift apart. Those
// functions use only <cmath>'s global C functions, which nvcc provides on the device too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hd.hpp"

namespace hrlkit {

// ---- per-element math (host and device) ---------------------------------------------------------

// One (t, env) window of nstep_returns (see below).
template <class F>
HRLKIT_HD void nstep_one(const F* rewards, const uint8_t* terminated, const uint8_t* truncated,
                         const uint8_t* option_ends, const F* next_values, int64_t T, int64_t N, double gamma,
                         double lam, int64_t n, int64_t t, int64_t e, F* ret, F* disc_out, int64_t* steps_out) {
    const int64_t horizon = n < T - t ? n : T - t;
    // w: the weight (gamma lam)^k of step t+k's reward; each step the window goes on past adds
    // gamma (1 - lam) w times the value of its next state (nothing when lam = 1)
    double g = 0.0, w = 1.0, disc = 0.0;
    int64_t k = 0;
    while (k < horizon) {
        const int64_t i = (t + k) * N + e;
        g += w * static_cast<double>(rewards[i]);
        ++k;
        if (terminated[i]) { disc = 0.0; break; }
        disc = w * gamma;
        if (k == horizon || (truncated && truncated[i]) || (option_ends && option_ends[i])) break;
        if (next_values && lam != 1.0) g += disc * (1.0 - lam) * static_cast<double>(next_values[i]);
        w = disc * lam;
    }
    const int64_t o = t * N + e;
    if (next_values && disc != 0.0) g += disc * static_cast<double>(next_values[(t + k - 1) * N + e]);
    ret[o] = static_cast<F>(g);
    disc_out[o] = static_cast<F>(disc);
    steps_out[o] = k;
}

// V_Omega(s) for an epsilon-greedy option policy: (1 - eps) max_w Q(s, w) + eps mean_w Q(s, w).
template <class F>
HRLKIT_HD double option_value_row(const F* row, int64_t K, double eps) {
    double mx = -HUGE_VAL, sum = 0.0;
    for (int64_t w = 0; w < K; ++w) {
        const double v = static_cast<double>(row[w]);
        mx = fmax(mx, v);
        sum += v;
    }
    return (1.0 - eps) * mx + eps * sum / static_cast<double>(K);
}

// U(s', w) = (1 - beta) Q(s', w) + beta V_Omega(s') for row b, option w = options[b] (in range).
template <class F>
HRLKIT_HD F option_bootstrap_one(const F* q_next, const F* beta, bool beta_per_option, const int64_t* options,
                                 int64_t K, double eps, int64_t b) {
    const F* row = q_next + b * K;
    const int64_t w = options[b];
    const double be = static_cast<double>(beta_per_option ? beta[b * K + w] : beta[b]);
    return static_cast<F>((1.0 - be) * static_cast<double>(row[w]) + be * option_value_row(row, K, eps));
}

// V(s) over options for a Boltzmann option policy pi(w|s) ~ exp(Q(s, w) / tau):
//   soft: tau log sum_w exp(Q(s, w) / tau)   (expected value plus tau times the choice's entropy)
//   else: sum_w pi(w|s) Q(s, w)              (expected value only)
// tau = 0 is the greedy limit, max_w Q(s, w), in both cases.
template <class F>
HRLKIT_HD double boltzmann_value_row(const F* row, int64_t K, double tau, bool soft) {
    double mx = -HUGE_VAL;
    for (int64_t w = 0; w < K; ++w) mx = fmax(mx, static_cast<double>(row[w]));
    if (tau <= 0.0) return mx;
    double z = 0.0, zq = 0.0;
    for (int64_t w = 0; w < K; ++w) {
        const double q = static_cast<double>(row[w]);
        const double e = exp((q - mx) / tau);
        z += e;
        zq += e * q;
    }
    return soft ? mx + tau * log(z) : zq / z;
}

// Row b of soft_option_targets (see below); options[b] in range.
template <class F>
HRLKIT_HD void soft_option_one(const F* q_next, const F* logp, const F* q_omega, const F* beta, const int64_t* options,
                               const F* rewards, const F* discounts, const F* alpha, int64_t B, int64_t K, double tau,
                               bool soft, double xi, int64_t b, F* q_option, F* value, F* target, F* advantage) {
    const int64_t w = options[b];
    const double qo = fmin(static_cast<double>(q_next[b]), static_cast<double>(q_next[B + b])) -
                      static_cast<double>(alpha[w]) * static_cast<double>(logp[b]);
    const F* row = q_omega + b * K;
    const double v = boltzmann_value_row(row, K, tau, soft);
    const double be = static_cast<double>(beta[b]);
    q_option[b] = static_cast<F>(qo);
    value[b] = static_cast<F>(v);
    target[b] = static_cast<F>(static_cast<double>(rewards[b]) + static_cast<double>(discounts[b]) * ((1.0 - be) * qo + be * v));
    advantage[b] = static_cast<F>(static_cast<double>(row[w]) - v + xi);
}

// Row b of skill_rewards (see below); skills[b] in range; log_z = log Z.
template <class F>
HRLKIT_HD void skill_reward_one(const F* logits, const int64_t* skills, int64_t Z, double log_z, int64_t b,
                                F* reward, uint8_t* correct) {
    const F* row = logits + b * Z;
    double mx = -HUGE_VAL;
    for (int64_t k = 0; k < Z; ++k) mx = fmax(mx, static_cast<double>(row[k]));
    double sum = 0.0;
    for (int64_t k = 0; k < Z; ++k) sum += exp(static_cast<double>(row[k]) - mx);
    const double own = static_cast<double>(row[skills[b]]);
    reward[b] = static_cast<F>(own - mx - log(sum) + log_z);
    correct[b] = own >= mx ? 1 : 0;
}

// cos(u0 - u1, v) over D entries; 0 when |u0 - u1| or |v| <= eps.
template <class F>
HRLKIT_HD double cosine(const F* u0, const F* u1, const F* v, int64_t D, double eps) {
    double uv = 0.0, uu = 0.0, vv = 0.0;
    for (int64_t d = 0; d < D; ++d) {
        const double u = static_cast<double>(u0[d]) - static_cast<double>(u1[d]);
        const double w = static_cast<double>(v[d]);
        uv += u * w;
        uu += u * u;
        vv += w * w;
    }
    const double nu = sqrt(uu), nv = sqrt(vv);
    return (nu <= eps || nv <= eps) ? 0.0 : uv / (nu * nv);
}

// Rollout step t of env n of feudal_terms (see below).
template <class F>
HRLKIT_HD void feudal_one(const F* states, const F* goals, const uint8_t* starts, int64_t L, int64_t N, int64_t D,
                          int64_t c, double eps, int64_t t, int64_t n, F* intrinsic, F* direction, int64_t* horizon) {
    const int64_t j = c + t;
    // the latest episode start in [j - c, j] bounds the look-back (none: the whole window counts)
    int64_t first = j - c;
    for (int64_t k = j; k > j - c; --k)
        if (starts[k * N + n]) { first = k; break; }
    double sum = 0.0;
    for (int64_t i = 1; j - i >= first; ++i)
        sum += cosine(states + (j * N + n) * D, states + ((j - i) * N + n) * D, goals + ((j - i) * N + n) * D, D, eps);
    intrinsic[t * N + n] = static_cast<F>(sum / static_cast<double>(c));
    int64_t e = j;
    while (e + 1 < L && e + 1 - j <= c && !starts[(e + 1) * N + n]) ++e;
    horizon[t * N + n] = e - j;
    const F* se = states + (e * N + n) * D;
    const F* sj = states + (j * N + n) * D;
    F* out = direction + (t * N + n) * D;
    for (int64_t d = 0; d < D; ++d) out[d] = static_cast<F>(static_cast<double>(se[d]) - static_cast<double>(sj[d]));
}

// ---- CPU loops ------------------------------------------------------------------------------------

// For every (t, env) of a [T, N] rollout (row-major, time first):
//   k      = steps summed: up to n, stopping after the first step that ends the episode
//            (terminated or truncated), that ends the running option (option_ends, optional),
//            or at the end of the rollout;
//   G      = sum_{i<k} gamma^i r_{t+i};
//   disc   = gamma^k, or 0 when the window ended on a terminal step (no bootstrap);
//   ret    = G + disc * next_values[t+k-1] when next_values (value of s_{i+1} for each step i) is
//            given, else G.
// With lam < 1 (next_values required) the window's return is the lambda-return
//   G_t = r_t + gamma ((1 - lam) V(s_{t+1}) + lam G_{t+1}),
// the window's last step bootstrapping fully: rewards weigh (gamma lam)^i, each inner step adds
// gamma (1 - lam) (gamma lam)^i next_values[t+i], and disc = gamma^k lam^(k-1) (0 after a terminal
// step). lam = 1 is the plain n-step return, bit for bit.
// Flags are bytes (0/1); option_ends and next_values may be null.
template <class F>
void nstep_returns(const F* rewards, const uint8_t* terminated, const uint8_t* truncated,
                   const uint8_t* option_ends, const F* next_values, int64_t T, int64_t N, double gamma,
                   double lam, int64_t n, F* ret, F* disc_out, int64_t* steps_out) {
    if (n <= 0) throw std::invalid_argument("n: expected an integer >= 1, got " + std::to_string(n));
    if (!(lam >= 0.0 && lam <= 1.0)) throw std::invalid_argument("lam: expected a number in [0, 1], got " + std::to_string(lam));
    if (lam != 1.0 && !next_values) throw std::invalid_argument("lam: a lambda-return (lam < 1) needs next_values");
    for (int64_t t = 0; t < T; ++t)
        for (int64_t e = 0; e < N; ++e)
            nstep_one(rewards, terminated, truncated, option_ends, next_values, T, N, gamma, lam, n, t, e, ret, disc_out,
                      steps_out);
}

template <class F>
void option_values(const F* q, int64_t B, int64_t K, double eps, F* out) {
    for (int64_t b = 0; b < B; ++b) out[b] = static_cast<F>(option_value_row(q + b * K, K, eps));
}

// U(s', w) = (1 - beta) Q(s', w) + beta V_Omega(s') for the option w that was running.
// beta: [B] (already that option's) or [B, K] (beta_per_option; column w is used).
template <class F>
void option_bootstrap(const F* q_next, const F* beta, bool beta_per_option, const int64_t* options,
                      int64_t B, int64_t K, double eps, F* out) {
    for (int64_t b = 0; b < B; ++b)
        if (options[b] < 0 || options[b] >= K)
            throw std::out_of_range("options: expected ids in [0, " + std::to_string(K) + "), got " +
                                    std::to_string(options[b]) + " at position " + std::to_string(b));
    for (int64_t b = 0; b < B; ++b) out[b] = option_bootstrap_one(q_next, beta, beta_per_option, options, K, eps, b);
}

// Soft Option-Critic targets for B transitions, each trained for one option w_b of K:
//   q_option[b]  = min(q1[b], q2[b]) - alpha[w_b] logp[b]   (the soft value of w_b at s': Q_Omega(s', w_b)
//                                                           from the twin target critics at a' ~ pi_w(s'))
//   value[b]     = V(s') = boltzmann_value_row(q_omega[b, .], tau, soft)   (over all options)
//   target[b]    = r[b] + disc[b] ((1 - beta[b]) q_option[b] + beta[b] value[b])
//   advantage[b] = q_omega[b, w_b] - value[b] + xi      (the termination advantage of w_b at s')
// q_next [2, B]: both critics' head w_b at (s', a'); logp [B]: log pi_w(a' | s'); q_omega [B, K]:
// the option values at s' (an option-value network); beta [B]: beta_w(s'); disc [B]: gamma^k, or 0
// after a terminal step. Options are checked before anything is written.
template <class F>
void soft_option_targets(const F* q_next, const F* logp, const F* q_omega, const F* beta, const int64_t* options,
                         const F* rewards, const F* discounts, const F* alpha, int64_t B, int64_t K, double tau,
                         bool soft, double xi, F* q_option, F* value, F* target, F* advantage) {
    for (int64_t b = 0; b < B; ++b)
        if (options[b] < 0 || options[b] >= K)
            throw std::out_of_range("options: expected ids in [0, " + std::to_string(K) + "), got " +
                                    std::to_string(options[b]) + " at position " + std::to_string(b));
    for (int64_t b = 0; b < B; ++b)
        soft_option_one(q_next, logp, q_omega, beta, options, rewards, discounts, alpha, B, K, tau, soft, xi, b,
                        q_option, value, target, advantage);
}

// DIAYN's intrinsic reward for B transitions and Z skills with a uniform, fixed prior p(z) = 1/Z:
//   reward[b]  = log q(z_b | s'_b) - log p(z_b) = log_softmax(logits[b, .])[z_b] + log Z
//   correct[b] = 1 when z_b is the discriminator's most likely skill (ties count as correct)
// logits [B, Z]: the discriminator at the next states. Skills are checked before anything is written.
template <class F>
void skill_rewards(const F* logits, const int64_t* skills, int64_t B, int64_t Z, F* reward, uint8_t* correct) {
    for (int64_t b = 0; b < B; ++b)
        if (skills[b] < 0 || skills[b] >= Z)
            throw std::out_of_range("skills: expected ids in [0, " + std::to_string(Z) + "), got " +
                                    std::to_string(skills[b]) + " at position " + std::to_string(b));
    const double log_z = std::log(static_cast<double>(Z));
    for (int64_t b = 0; b < B; ++b) skill_reward_one(logits, skills, Z, log_z, b, reward, correct);
}

// FeUdal Networks' worker reward and manager directions over a rollout, for N envs and
// D-dimensional states. Rows are time: the first c rows are the previous rollout's last c steps
// (history), the next T = L - c rows are this rollout. starts[j, n] marks the first step of an
// episode (no look-back or look-ahead crosses it; mark the first row of training too).
// For each rollout step j = c + t:
//   intrinsic[t, n] = (1/c) sum_{i=1..c, same episode} cos(s_j - s_{j-i}, g_{j-i})
//   direction[t, n] = s_e - s_j,  e = the furthest row <= j + c in the same episode (and the array)
//   horizon[t, n]   = e - j
// cos(u, v) is 0 when |u| or |v| <= eps (a zero-norm difference or goal carries no direction).
template <class F>
void feudal_terms(const F* states, const F* goals, const uint8_t* starts, int64_t L, int64_t N, int64_t D, int64_t c,
                  double eps, F* intrinsic, F* direction, int64_t* horizon) {
    if (c < 1) throw std::invalid_argument("c: expected an integer >= 1, got " + std::to_string(c));
    if (L <= c) throw std::invalid_argument("states: expected more than c = " + std::to_string(c) + " rows (history + rollout), got " + std::to_string(L));
    const int64_t T = L - c;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < T; ++t) feudal_one(states, goals, starts, L, N, D, c, eps, t, n, intrinsic, direction, horizon);
}

}  // namespace hrlkit
