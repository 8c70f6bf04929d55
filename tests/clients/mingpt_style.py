"""A GPT written the way minGPT's readers write one (in our own words): config object, causal
self-attention by hand, GELU MLP, weight init through ``apply``, AdamW with decay groups,
``generate``, and a toy training loop (reverse a short digit sequence).

The library is a parameter: ``build(torch)`` returns the program for ``import torch`` or for
``import tinyattn as torch``; the body below says ``torch.xxx``, ``nn.xxx``, ``F.xxx`` as a
tutorial does, so only the binding differs.
"""
import math
from types import SimpleNamespace


class GPTConfig:
    def __init__(self, vocab_size, block_size, n_layer=2, n_head=2, n_embd=16, dropout=0.0):
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_embd = n_embd
        self.embd_pdrop = self.resid_pdrop = self.attn_pdrop = dropout


def build(torch):
    nn = torch.nn
    F = torch.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd)
            self.attn_dropout = nn.Dropout(config.attn_pdrop)
            self.resid_dropout = nn.Dropout(config.resid_pdrop)
            T = config.block_size
            self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))
            self.n_head = config.n_head
            self.n_embd = config.n_embd

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.resid_dropout(self.c_proj(y))

    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = nn.ModuleDict(dict(
                c_fc=nn.Linear(config.n_embd, 4 * config.n_embd),
                c_proj=nn.Linear(4 * config.n_embd, config.n_embd),
                act=nn.GELU(),
                dropout=nn.Dropout(config.resid_pdrop),
            ))
            m = self.mlp
            self.mlpf = lambda x: m.dropout(m.c_proj(m.act(m.c_fc(x))))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlpf(self.ln_2(x))
            return x

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.block_size = config.block_size
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.embd_pdrop),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.apply(self._init_weights)
            # the residual projections get a smaller std, scaled by depth (GPT-2's choice)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                torch.nn.init.zeros_(module.bias)
                torch.nn.init.ones_(module.weight)

        def configure_optimizers(self, learning_rate=5e-4, weight_decay=0.1):
            decay, no_decay = set(), set()
            whitelist = (torch.nn.Linear,)
            blacklist = (torch.nn.LayerNorm, torch.nn.Embedding)
            for mn, m in self.named_modules():
                for pn, p in m.named_parameters():
                    fpn = f"{mn}.{pn}" if mn else pn
                    if pn.endswith("bias"):
                        no_decay.add(fpn)
                    elif pn.endswith("weight") and isinstance(m, whitelist):
                        decay.add(fpn)
                    elif pn.endswith("weight") and isinstance(m, blacklist):
                        no_decay.add(fpn)
            param_dict = {pn: p for pn, p in self.named_parameters()}
            assert not (decay & no_decay) and decay | no_decay == set(param_dict)
            optim_groups = [
                {"params": [param_dict[pn] for pn in sorted(decay)], "weight_decay": weight_decay},
                {"params": [param_dict[pn] for pn in sorted(no_decay)], "weight_decay": 0.0},
            ]
            return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=(0.9, 0.95))

        def forward(self, idx, targets=None):
            b, t = idx.size()
            assert t <= self.block_size
            pos = torch.arange(0, t, dtype=torch.long).unsqueeze(0)
            tok_emb = self.transformer.wte(idx)
            pos_emb = self.transformer.wpe(pos)
            x = self.transformer.drop(tok_emb + pos_emb)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            logits = self.lm_head(x)
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                       ignore_index=-1)
            return logits, loss

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, top_k)
                    logits[logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(logits, dim=-1)
                if do_sample:
                    idx_next = torch.multinomial(probs, num_samples=1)
                else:
                    _, idx_next = torch.topk(probs, k=1, dim=-1)
                idx = torch.cat((idx, idx_next), dim=1)
            return idx

    class ReverseDataset(torch.utils.data.Dataset):
        """Digits 0..n_digits-1, length `length`: the prompt, then the same digits reversed.
        Targets are -1 over the prompt so only the answer is scored."""

        def __init__(self, n_samples=256, length=4, n_digits=3, seed=0):
            g = torch.Generator().manual_seed(seed)
            self.data = torch.randint(0, n_digits, (n_samples, length), generator=g)
            self.length = length
            self.n_digits = n_digits

        def __len__(self):
            return self.data.size(0)

        def get_vocab_size(self):
            return self.n_digits

        def get_block_size(self):
            return 2 * self.length - 1

        def __getitem__(self, i):
            inp = self.data[i]
            sol = torch.flip(inp, dims=[0])
            cat = torch.cat((inp, sol), dim=0)
            x = cat[:-1].clone()
            y = cat[1:].clone()
            y[:self.length - 1] = -1
            return x, y

    def train(model, dataset, max_iters=200, batch_size=32, learning_rate=5e-3, seed=0):
        optimizer = model.configure_optimizers(learning_rate=learning_rate)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        model.train()
        losses = []
        it = 0
        while it < max_iters:
            for x, y in loader:
                logits, loss = model(x, y)
                model.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                losses.append(loss.item())
                it += 1
                if it >= max_iters:
                    break
        return losses

    return SimpleNamespace(GPTConfig=GPTConfig, CausalSelfAttention=CausalSelfAttention,
                           Block=Block, GPT=GPT, ReverseDataset=ReverseDataset, train=train)
