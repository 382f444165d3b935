"""Convert a PyTorch .pth/.pt state dict (e.g. an official MoFME-Pytorch checkpoint) to safetensors, which Node reads (`mofme import`); names are kept as they are (`module.` too). Usage: python3 pth_to_safetensors.py IN.pth OUT.safetensors"""
import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); import torch; from mofme_torch import save_safetensors  # noqa: E401,E702
state = torch.load(sys.argv[1], map_location='cpu', weights_only=True)  # weights_only: never run code from a pickle
state = state.get('state_dict', state.get('model', state)) if isinstance(state, dict) else state  # training scripts often wrap it
save_safetensors(sys.argv[2], {k: v for k, v in state.items() if torch.is_tensor(v)})
