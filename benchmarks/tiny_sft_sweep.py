"""How fast does the tiny Llama learn the NBA text-to-SQL task? The sweep that chose tiny_nba's SFT defaults.

A plain PyTorch loop (no Ray, no TRL), so that a dozen configurations run side by side on one GPU in a minute or
two; greedy execution accuracy on the test split by a minimal SQLite comparison (bag of rows, order with ORDER BY).

    python benchmarks/tiny_sft_sweep.py --data artifacts/demo/data --hidden 160 --heads 5 --inter 480 --bs 32 \
        --epochs 3 --lr 5e-3 --eval_at 1.5 --neval 1198

--data holds sft/{train,test}.parquet and nba.sqlite (or train/test .jsonl for a machine without pyarrow).
Prints one JSON line per evaluation: train/test EX, test EX per hold-out kind, mean generated tokens.
"""
import argparse, json, math, random, sqlite3, time, sys, os
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ap = argparse.ArgumentParser()
ap.add_argument('--data', required=True)
ap.add_argument('--vocab', type=int, default=2048)
ap.add_argument('--hidden', type=int, default=128)
ap.add_argument('--layers', type=int, default=2)
ap.add_argument('--heads', type=int, default=4)
ap.add_argument('--inter', type=int, default=384)
ap.add_argument('--epochs', type=float, default=10)
ap.add_argument('--lr', type=float, default=3e-3)
ap.add_argument('--bs', type=int, default=32)
ap.add_argument('--reasoning', type=int, default=1)
ap.add_argument('--pretok', default='byte')
ap.add_argument('--eval_at', default='2,5,10')
ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--neval', type=int, default=400)
ap.add_argument('--tag', default='x')
ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
ap.add_argument('--timeonly', type=int, default=0)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
D = a.data


def load(split):
    if os.path.exists(f'{D}/{split}.jsonl'):
        return [json.loads(line) for line in open(f'{D}/{split}.jsonl')]
    import pyarrow.parquet as pq
    return pq.read_table(f'{D}/sft/{split}.parquet').to_pylist()


train, test = load('train'), load('test')
comp = lambda r: (f"Reasoning: {r['reasoning']}\nSQL: {r['sql']}" if a.reasoning else f"SQL: {r['sql']}")
prompt = lambda r: f"<|user|>\n{r['question']}<|end|>\n<|assistant|>\n"

tok = Tokenizer(models.BPE())
if a.pretok == 'byte':
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
else:  # words (with underscores) and single digits/punct/space, so a name is the same token everywhere
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[A-Za-z_]+|\d|\s+|[^\sA-Za-z_\d]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
specials = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
tok.train_from_iterator([f"{r['question']}\n{comp(r)}" for r in train], trainers.BpeTrainer(
    vocab_size=a.vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
T = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", additional_special_tokens=specials[2:])
eos, pad = T.eos_token_id, T.pad_token_id

def encode(r):
    p = T(prompt(r), add_special_tokens=False)['input_ids']
    c = T(comp(r), add_special_tokens=False)['input_ids'] + [eos]
    return p, c
enc = [encode(r) for r in train]
ntok = sum(len(p) + len(c) for p, c in enc) / len(enc)
torch.manual_seed(a.seed); random.seed(a.seed)
cfg = LlamaConfig(vocab_size=len(T), hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.heads, max_position_embeddings=512,
                  tie_word_embeddings=True, pad_token_id=pad, eos_token_id=eos, bos_token_id=None)
m = LlamaForCausalLM(cfg).to(a.device)
nparams = sum(p.numel() for p in m.parameters())
steps_per_epoch = math.ceil(len(enc) / a.bs)
total = int(a.epochs * steps_per_epoch)
opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0.0)
warm = max(1, int(0.05 * total))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1, s / total))))
db = sqlite3.connect(f'file:{D}/nba.sqlite?mode=ro', uri=True)

def run(sql):
    n = [0]
    def h():
        n[0] += 1
        return 1 if n[0] > 2000 else 0
    db.set_progress_handler(h, 1000)
    try:
        return db.execute(sql).fetchmany(10001)
    except Exception:
        return None
    finally:
        db.set_progress_handler(None, 1000)

from collections import Counter
def correct(pred, gold):
    g = run(gold); p = run(pred)
    if p is None: return False
    if 'order by' in gold.lower(): return p == g
    return Counter(p) == Counter(g)

@torch.no_grad()
def evaluate(rows):
    m.eval(); T.padding_side = 'left'; res = []
    for i in range(0, len(rows), 128):
        b = rows[i:i + 128]
        x = T([prompt(r) for r in b], return_tensors='pt', padding=True, add_special_tokens=False).to(a.device)
        out = m.generate(**x, max_new_tokens=110 if a.reasoning else 70, do_sample=False, pad_token_id=pad, eos_token_id=eos)
        for r, o in zip(b, out):
            c = T.decode(o[x['input_ids'].shape[1]:], skip_special_tokens=True)
            sql = c.split('SQL:', 1)[1].strip() if 'SQL:' in c else ''
            res.append((r, correct(sql, r['sql']) if sql else False, len(o[x['input_ids'].shape[1]:])))
    m.train()
    return res

rng = random.Random(a.seed)
test_eval = test[:a.neval]; train_eval = train[::15][:200]
eval_at = {int(float(e) * steps_per_epoch) for e in a.eval_at.split(',')} | {total}
t0 = time.time(); step = 0; tokens = 0
print(json.dumps({'tag': a.tag, 'params': nparams, 'vocab': len(T), 'mean_tokens': round(ntok, 1), 'steps': total}), flush=True)
while step < total:
    order = list(range(len(enc))); rng.shuffle(order)
    for i in range(0, len(order), a.bs):
        if step >= total: break
        b = [enc[j] for j in order[i:i + a.bs]]
        L = max(len(p) + len(c) for p, c in b)
        ids = torch.full((len(b), L), pad); lab = torch.full((len(b), L), -100); att = torch.zeros((len(b), L), dtype=torch.long)
        for k, (p, c) in enumerate(b):
            s = p + c; ids[k, :len(s)] = torch.tensor(s); lab[k, len(p):len(s)] = torch.tensor(c); att[k, :len(s)] = 1
        tokens += int(att.sum())
        loss = m(input_ids=ids.to(a.device), attention_mask=att.to(a.device), labels=lab.to(a.device)).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
        step += 1
        if a.timeonly and step == a.timeonly:
            dt = time.time() - t0
            print(json.dumps({'tag': a.tag, 'params': nparams, 's_per_step': dt / step, 'tok_per_s': tokens / dt,
                              'epoch_s': dt / step * steps_per_epoch}), flush=True)
            sys.exit()
        if step in eval_at:
            tt = time.time() - t0
            te = evaluate(test_eval); tr = evaluate(train_eval)
            by = {}
            for r, ok, _ in te: by.setdefault(r['holdout'], []).append(ok)
            print(json.dumps({'tag': a.tag, 'epoch': round(step / steps_per_epoch, 2), 'loss': round(loss.item(), 4),
                              'train_ex': round(sum(o for _, o, _ in tr) / len(tr), 3),
                              'test_ex': round(sum(o for _, o, _ in te) / len(te), 3),
                              'by_holdout': {k: round(sum(v) / len(v), 3) for k, v in by.items()},
                              'gen_tokens': round(sum(n for _, _, n in te) / len(te), 1), 'train_s': round(tt, 1)}), flush=True)
